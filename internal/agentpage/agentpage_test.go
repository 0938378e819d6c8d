package agentpage_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
)

// browser finds Debian's chromium. Where none is installed the test is skipped, except when
// IVR_BRIDGE_REQUIRE_BROWSER is set (CI installs chromium and sets it): then it fails.
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("IVR_BRIDGE_REQUIRE_BROWSER") != "" {
		t.Fatal("IVR_BRIDGE_REQUIRE_BROWSER is set but no chromium is installed")
	}
	t.Skip("no chromium: the page is tested where a browser is installed (CI)")
	return ""
}

func TestAgentPageInHeadlessChromium(t *testing.T) {
	exe := browser(t)
	s := apptest.New(t, nil)
	const number = "+447400123456"
	ref := "CA" + apptest.RandomID()
	r := s.Do(http.MethodPost, "/v1/sessions", map[string]any{"referenceId": ref, "phoneNumber": number, "provider": "authsignal"})
	if r.Status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	code := s.Authsignal.CodeFor(r.JSON(t)["challengeId"].(string))
	// Another call, cancelled: the list shows more than one status.
	other := "CA" + apptest.RandomID()
	if r := s.Do(http.MethodPost, "/v1/sessions", map[string]any{"referenceId": other, "phoneNumber": "+447400123457", "provider": "authsignal"}); r.Status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	if r := s.Do(http.MethodPost, "/v1/sessions/"+other+"/cancel", nil); r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// cdproto lags Chromium's protocol: events it cannot decode are noise, anything else is
	// worth seeing.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Log(msg)
		}
	}))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	row := `tr[data-ref="` + ref + `"]`
	if err := chromedp.Run(ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(`#key`, chromedp.ByQuery),
		chromedp.SendKeys(`#key`, apptest.APIKey, chromedp.ByQuery),
		chromedp.Click(`#key-form button`, chromedp.ByQuery),
		chromedp.WaitVisible(row+`[data-status="sent"]`, chromedp.ByQuery),
		// The last four digits find it; others do not.
		chromedp.SendKeys(`#search`, "3456", chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
		chromedp.SetValue(`#search`, "", chromedp.ByQuery),
		chromedp.SendKeys(`#search`, "9999", chromedp.ByQuery),
		chromedp.WaitNotPresent(row, chromedp.ByQuery),
		chromedp.SetValue(`#search`, "", chromedp.ByQuery),
		chromedp.SendKeys(`#search`, ref[len(ref)-6:], chromedp.ByQuery),
		chromedp.WaitVisible(row, chromedp.ByQuery),
		// Follow it live, from the keyboard.
		chromedp.Focus(row, chromedp.ByQuery),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(row+`[aria-current="true"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#detail h2`, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("loading the page and finding the session: %v", err)
	}

	if r := s.Do(http.MethodPost, "/v1/sessions/"+ref+"/code", map[string]string{"code": code}); r.Status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.Status, r.Body)
	}
	var html, memory, announced string
	var badge []string // class, text, background colour
	var stopped bool
	if err := chromedp.Run(ctx,
		chromedp.WaitVisible(row+`[data-status="verified"]`, chromedp.ByQuery),
		// After the final status the page stops following (no EventSource left to reconnect).
		chromedp.Poll(`state.stream === null`, &stopped, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Evaluate(`JSON.stringify(state)`, &memory),
		chromedp.Text(`#announce`, &announced, chromedp.ByQuery),
		// One script run reads the badge: the list's 2 s re-render could otherwise replace it
		// between two reads.
		chromedp.Evaluate(`(() => { const b = document.querySelector('`+row+` .status');
			return [b.className, b.textContent, getComputedStyle(b).backgroundColor]; })()`, &badge),
		chromedp.WaitVisible(`#detail h2`, chromedp.ByQuery),
		chromedp.OuterHTML(`html`, &html, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("watching the session turn verified: %v", err)
	}
	if len(badge) != 3 || !strings.Contains(badge[0], "status-verified") || badge[1] != "verified" || badge[2] != "rgb(27, 127, 59)" {
		t.Fatalf("badge (class, text, colour) %q: want green 'verified'", badge)
	}
	for _, where := range []string{html, memory} {
		if strings.Contains(where, number) || strings.Contains(where, "740012345") { // either call's number
			t.Fatal("the page holds the full phone number")
		}
	}
	if announced != ref+": verified" {
		t.Fatalf("the live region says %q", announced)
	}
	if !strings.Contains(html, "•••• 3456") || !strings.Contains(html, "code_accepted") {
		t.Fatal("the page lacks the masked number or the event history")
	}
	// With the search cleared, both calls are listed again, each status in words.
	var otherStatus string
	if err := chromedp.Run(ctx,
		chromedp.SetValue(`#search`, "", chromedp.ByQuery),
		// The list re-renders every 2 s, which can detach a node between a query and a read:
		// wait for the badge, then read its words in one script run.
		chromedp.WaitVisible(`tr[data-ref="`+other+`"] .status.status-cancelled`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('tr[data-ref="`+other+`"] .status').textContent`, &otherStatus),
	); err != nil || otherStatus != "cancelled" {
		t.Fatalf("the cancelled call: %q, %v", otherStatus, err)
	}
	if path := os.Getenv("AGENT_PAGE_SCREENSHOT"); path != "" {
		var png []byte
		if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
