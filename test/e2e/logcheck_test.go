package e2e

import "testing"

// The log check of every e2e test must catch a code or number logged whole, and not a code
// that its digits happen to make inside a timestamp or request ID (a flaky failure before).
func TestContainsWhole(t *testing.T) {
	for _, c := range []struct {
		logs, s string
		want    bool
	}{
		{`"time":"12:20:10.270000008Z"`, "000008", false},
		{`"request_id":"a7039218926d"`, "218926", false},
		{`"code":"000008"`, "000008", true},
		{`"phone":"+447700900123"`, "+447700900123", true},
		{`"phone":"+447700900123"`, "447700900123", true},
		{`tel:+447700900123;x`, "+447700900123", true},
		{`000008`, "000008", true},
		{`1000008 and 000008`, "000008", true},
		{`x`, "", false},
	} {
		if got := containsWhole(c.logs, c.s); got != c.want {
			t.Errorf("containsWhole(%q, %q) = %v", c.logs, c.s, got)
		}
	}
}
