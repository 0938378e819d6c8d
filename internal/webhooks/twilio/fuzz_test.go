package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"sort"
	"testing"
)

// signReference is Twilio's documented algorithm, step by step: the URL, then each
// parameter name and value, names sorted (a name's values sorted too, as before this change;
// twilio-python also drops repeated identical values, which a voice webhook never sends).
// Sign computes the form's part once for every URL variant; this holds it to the plain reading.
func signReference(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(fullURL))
	for _, k := range keys {
		vals := append([]string(nil), form[k]...)
		sort.Strings(vals)
		for _, v := range vals {
			m.Write([]byte(k))
			m.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

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
		if ref := signReference("12345", rawURL, form); good != ref {
			t.Fatalf("Sign = %s, the algorithm as Twilio spells it = %s", good, ref)
		}
		for _, u := range urlVariants(rawURL) {
			if !ValidSignature("12345", signReference("12345", u, form), rawURL, form) {
				t.Fatalf("a signature over the variant %q of %q refused", u, rawURL)
			}
		}
		if !ValidSignature("12345", good, rawURL, form) {
			t.Fatalf("own signature refused for %q", rawURL)
		}
		if ValidSignature("12345", good, rawURL+"/other", form) && urlVariants(rawURL + "/other")[0] != rawURL {
			t.Fatalf("signature of %q accepted for another URL", rawURL)
		}
	})
}
