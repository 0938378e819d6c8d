package vonage

import (
	"testing"
	"time"
)

// FuzzVerifyToken: any token and body give an answer, never a panic; a token signed for a
// body verifies for it and for no other.
func FuzzVerifyToken(f *testing.F) {
	now := time.Unix(1_790_000_000, 0)
	f.Add("a.b.c", []byte(`{"uuid":"x"}`))
	f.Add("", []byte(nil))
	f.Add("eyJhbGciOiJub25lIn0.e30.", []byte(`{}`))
	f.Fuzz(func(t *testing.T, token string, body []byte) {
		_ = VerifyToken("secret", token, body, now)
		good, err := Sign("secret", body, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyToken("secret", good, body, now); err != nil {
			t.Fatalf("own token refused: %v", err)
		}
		if VerifyToken("secret", good, append(append([]byte{}, body...), ' '), now) == nil {
			t.Fatal("a token verified for another body")
		}
	})
}
