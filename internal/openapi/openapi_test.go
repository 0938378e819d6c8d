package openapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/app/apptest"
	"github.com/ivr-bridge/ivr-bridge/internal/openapi"
)

func load(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Document())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// TestEveryRouteIsDescribedAndEveryDescriptionRouted compares the document with the routes
// the real server registers, both ways.
func TestEveryRouteIsDescribedAndEveryDescriptionRouted(t *testing.T) {
	doc, _ := load(t)
	s := apptest.New(t, nil)
	e, ok := s.App.Handler.(*echo.Echo)
	if !ok {
		t.Fatalf("the handler is a %T", s.App.Handler)
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		if strings.HasSuffix(r.Path, "*") || r.Method == "echo_route_not_found" {
			continue
		}
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				name := seg[1:]
				if name == "ref" {
					name = "referenceId"
				}
				path = strings.Replace(path, seg, "{"+name+"}", 1)
			}
		}
		served[r.Method+" "+path] = true
	}
	described := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described[method+" "+path] = true
		}
	}
	var missing, extra []string
	for k := range served {
		if !described[k] {
			missing = append(missing, k)
		}
	}
	for k := range described {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes not described: %v\ndescribed but not routed: %v", missing, extra)
	}
}

// TestRealTrafficMatchesTheDocument validates real requests and answers of the session API.
func TestRealTrafficMatchesTheDocument(t *testing.T) {
	_, router := load(t)
	s := apptest.New(t, nil)
	check := func(method, path string, body any, wantStatus int) *apptest.Response {
		t.Helper()
		r := s.Do(method, path, body)
		if r.Status != wantStatus {
			t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		var raw []byte
		switch b := body.(type) {
		case string:
			raw = []byte(b)
		case nil:
		default:
			t.Fatalf("pass bodies as strings")
		}
		u, _ := url.Parse(s.URL + path)
		req, _ := http.NewRequest(method, u.String(), bytes.NewReader(raw))
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+apptest.APIKey)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: no route in the document: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if wantStatus < 400 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Fatalf("%s %s: request does not match the document: %v", method, path, err)
			}
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.Status, Header: r.Header,
			Body: io.NopCloser(bytes.NewReader(r.Body))}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Fatalf("%s %s: answer does not match the document: %v", method, path, err)
		}
		return r
	}
	ref := "CA" + apptest.RandomID()
	check("GET", "/healthz", nil, 200)
	check("GET", "/readyz", nil, 200)
	check("GET", "/openapi.json", nil, 200)
	r := check("POST", "/v1/sessions", `{"referenceId":"`+ref+`","phoneNumber":"+447400123456","provider":"authsignal","userId":"u1"}`, 201)
	challenge := r.JSON(t)["challengeId"].(string)
	check("POST", "/v1/sessions", `{"referenceId":"`+ref+`","phoneNumber":"+447400123456","provider":"authsignal","userId":"u1"}`, 200)
	check("GET", "/v1/sessions/"+ref, nil, 200)
	check("GET", "/v1/sessions?limit=5", nil, 200)
	check("POST", "/v1/sessions/"+ref+"/code", `{"code":"000000"}`, 200)
	challenge = check("POST", "/v1/sessions/"+ref+"/resend", `{"channel":"WHATSAPP"}`, 200).JSON(t)["challengeId"].(string)
	if got := check("POST", "/v1/sessions/"+ref+"/code", `{"code":"`+s.Authsignal.CodeFor(challenge)+`"}`, 200).JSON(t)["status"]; got != "verified" {
		t.Fatalf("status after the right code = %v, want verified", got)
	}
	check("POST", "/v1/sessions/"+ref+"/cancel", nil, 409) // verified is final
	other := "CA" + apptest.RandomID()
	check("POST", "/v1/sessions", `{"referenceId":"`+other+`","phoneNumber":"+447400123456","provider":"authsignal","userId":"u1"}`, 201)
	check("POST", "/v1/sessions/"+other+"/cancel", nil, 200)
	check("POST", "/v1/sessions/"+other+"/cancel", nil, 200) // cancelling again answers the same session
	check("GET", "/v1/sessions/nope", nil, 404)
	check("GET", "/v1/sessions/has%20a%20space", nil, 400)
	check("POST", "/v1/sessions", `{"referenceId":"x","phoneNumber":"anonymous"}`, 422)
	check("POST", "/v1/sessions", `{"referenceId":1}`, 400)
}
