package fingerprint_test

import (
	"encoding/hex"
	"fmt"

	"github.com/veil-e2ee/veil/protocol/internal/fingerprint"
)

func Example() {
	alice, _ := hex.DecodeString("0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
	bob, _ := hex.DecodeString("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")

	// Each side computes the fingerprint with itself as "local".
	mine, _ := fingerprint.New(fingerprint.ScannableVersion, fingerprint.DefaultIterations,
		[]byte("+14152222222"), alice, []byte("+14153333333"), bob)
	theirs, _ := fingerprint.New(fingerprint.ScannableVersion, fingerprint.DefaultIterations,
		[]byte("+14153333333"), bob, []byte("+14152222222"), alice)

	fmt.Println(mine.Displayable == theirs.Displayable)
	fmt.Println(mine.Displayable)
	ok, err := fingerprint.CompareScannable(mine.Scannable, theirs.Scannable)
	fmt.Println(ok, err)
	// Output:
	// true
	// 300354477692869396892869876765458257569162576843440918079131
	// true <nil>
}
