package shamir_test

import (
	"fmt"

	"github.com/veil-e2ee/veil/client/internal/shamir"
)

func Example() {
	secret := []byte("backup key")
	shares, err := shamir.Split(secret, 3, 5, nil) // nil: crypto/rand
	if err != nil {
		panic(err)
	}

	// Each share is handed out as text; any three bring the secret back.
	var texts []string
	for _, s := range shares {
		texts = append(texts, s.Encode())
	}
	var back []shamir.Share
	for _, i := range []int{4, 0, 2} {
		s, err := shamir.ParseShare(texts[i])
		if err != nil {
			panic(err)
		}
		back = append(back, s)
	}
	got, err := shamir.Combine(back)
	fmt.Printf("%s %v\n", got, err)

	_, err = shamir.Combine(back[:2])
	fmt.Println(err)
	// Output:
	// backup key <nil>
	// shamir: not enough shares: 2 of 3
}
