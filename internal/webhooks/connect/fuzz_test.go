package connect

import (
	"bytes"
	"os"
	"testing"
)

// FuzzDecode: whatever arrives as a Connect event, decoding answers an event or an error,
// never a panic, and a decoded event yields a start request without panicking either.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"testdata/start.json", "testdata/code.json", "testdata/chat.json"} {
		if raw, err := os.ReadFile(name); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"Details":{"Parameters":{"action":1}}}`))
	f.Add([]byte(`{"Details":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := decode(bytes.NewReader(raw))
		if err != nil {
			return
		}
		_ = ev.startRequest()
		_ = ev.callerNumber()
	})
}
