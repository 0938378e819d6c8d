package twilio

import (
	"net/url"
	"testing"
)

// FuzzValidSignature: any signature, URL and form give an answer, never a panic; a form
// signed with the token always verifies, and never under another URL path.
func FuzzValidSignature(f *testing.F) {
	f.Add("0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "https://mycompany.com/myapp.php?foo=1&bar=2", "CallSid=CA1&Digits=1234")
	f.Add("", "http://[::1]:80/x", "a=1&a=2")
	f.Add("x", "%zz", "%zz")
	f.Fuzz(func(t *testing.T, sig, rawURL, rawForm string) {
		form, _ := url.ParseQuery(rawForm)
		_ = ValidSignature("12345", sig, rawURL, form)
		good := Sign("12345", rawURL, form)
		if !ValidSignature("12345", good, rawURL, form) {
			t.Fatalf("own signature refused for %q", rawURL)
		}
		if ValidSignature("12345", good, rawURL+"/other", form) && urlVariants(rawURL + "/other")[0] != rawURL {
			t.Fatalf("signature of %q accepted for another URL", rawURL)
		}
	})
}
