package recoverykey_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/veil-e2ee/veil/client/internal/recoverykey"
)

func Example() {
	// A real key comes from recoverykey.New(nil); a fixed one keeps the
	// output stable.
	key, err := recoverykey.New(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		panic(err)
	}
	text := key.String()
	fmt.Println(text)

	// Written down by hand: lower case, spaces, O for zero.
	typed := "oooo 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0006 964x"
	back, err := recoverykey.Parse(typed)
	fmt.Println(back.Equal(key), err)

	_, err = recoverykey.Parse("0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000 0006 946x")
	fmt.Println(errors.Is(err, recoverykey.ErrChecksum))

	backupKey := key.Derive(recoverykey.PurposeBackup)
	fmt.Println(len(backupKey))
	// Output:
	// 0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0006-964X
	// true <nil>
	// true
	// 32
}
