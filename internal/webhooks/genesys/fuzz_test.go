package genesys

import (
	"bytes"
	"testing"
)

// FuzzDecode: whatever Genesys sends, decoding answers a request or an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"conversationId":"c1","ani":"tel:+14155552671","action":"start"}`))
	f.Add([]byte(`{"conversationId":"c1","ani":"tel: +1 415 555 2671","action":"code","code":"123456"}`))
	f.Add([]byte(`{"ani":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := decode(bytes.NewReader(raw))
		if err != nil {
			return
		}
		_ = r.startRequest()
	})
}
