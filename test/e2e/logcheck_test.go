package e2e

import "testing"

// The log check of every e2e test must catch a code or number logged whole anywhere but in a
// line's time and request ID, where a code's digits turn up by chance (a flaky failure before).
func TestLogsHold(t *testing.T) {
	for _, c := range []struct {
		logs, s string
		want    bool
	}{
		{`{"time":"2026-12-02T12:20:10.270000008Z","msg":"request"}`, "000008", false},
		{`{"time":"t","msg":"request","request_id":"a7039218926d"}`, "218926", false},
		{`{"time":"t","msg":"code checked","code":"000008"}`, "000008", true},
		{`{"msg":"sent","phone":"+447700900123"}`, "+447700900123", true},
		{`{"msg":"sent","phone":"+447700900123"}`, "447700900123", true},
		{`{"msg":"bad input: a\n123456"}`, "123456", true},
		{`{"msg":"code123456"}`, "123456", true},
		{`{"msg":"x","err":"tel:+447700900123;x"}`, "+447700900123", true},
		{"not json 000008", "000008", true},
		{`{"msg":"one"}` + "\n" + `{"msg":"two 000008"}`, "000008", true},
	} {
		if got := logsHold(c.logs, c.s); got != c.want {
			t.Errorf("logsHold(%q, %q) = %v", c.logs, c.s, got)
		}
	}
}
