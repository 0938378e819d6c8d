package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ivr-bridge/ivr-bridge/internal/callsession"
)

// startBody is the body of POST /v1/sessions (DESIGN §4).
type startBody struct {
	ReferenceID string  `json:"referenceId"`
	PhoneNumber *string `json:"phoneNumber"` // nil: missing or null (400); "" is a withheld number (422, DESIGN §5)
	Country     string  `json:"country"`
	Provider    string  `json:"provider"`
	Channel     string  `json:"channel"`
	UserID      string  `json:"userId"`
	Username    string  `json:"username"`
	Email       string  `json:"email"`
	Locale      string  `json:"locale"`
}

func (s *Server) startSession(c echo.Context) error {
	var b startBody
	if err := decodeJSON(c, &b, true); err != nil {
		return err
	}
	switch {
	case b.ReferenceID == "":
		return invalid("referenceId is required and must be a string")
	case b.PhoneNumber == nil:
		return invalid("phoneNumber is required and must be a string")
	}
	res, err := s.deps.Service.Start(c.Request().Context(), callsession.StartRequest{
		ReferenceID: b.ReferenceID, PhoneNumber: *b.PhoneNumber, Country: b.Country,
		Provider: callsession.ProviderName(strings.ToLower(b.Provider)), Channel: callsession.Channel(b.Channel),
		UserID: b.UserID, Username: b.Username, Email: b.Email, Locale: b.Locale,
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	return c.JSON(status, View(res.Session))
}

// refParam is the referenceId of a /v1/sessions/{referenceId} path, decoded. A reference
// may hold '/', ':', '@' or '%' (DESIGN §3: printable ASCII but the space), which clients
// percent-encode (the agent page with encodeURIComponent). Echo routes on the escaped path
// when the request has one (URL.RawPath, see echo.GetPath) and leaves its parameters
// escaped; otherwise on the decoded path, whose parameters must not be decoded twice.
func refParam(c echo.Context) (string, error) {
	ref := c.Param("ref")
	if c.Request().URL.RawPath == "" {
		return ref, nil
	}
	decoded, err := url.PathUnescape(ref)
	if err != nil {
		return "", invalid("the referenceId in the path is not validly percent-encoded")
	}
	return decoded, nil
}

func (s *Server) getSession(c echo.Context) error {
	ref, err := refParam(c)
	if err != nil {
		return err
	}
	sess, err := s.deps.Service.Get(c.Request().Context(), ref)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, View(sess))
}

// listBody is the answer of GET /v1/sessions.
type listBody struct {
	Sessions   []*callsession.Session `json:"sessions"`
	NextCursor string                 `json:"nextCursor"` // always there: "" on the last page
}

func (s *Server) listSessions(c echo.Context) error {
	q := callsession.ListQuery{Status: callsession.Status(c.QueryParam("status")), Cursor: c.QueryParam("cursor")}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return invalid("limit must be a whole number from 1 to 200")
		}
		q.Limit = n
	}
	page, err := s.deps.Service.List(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := listBody{Sessions: make([]*callsession.Session, 0, len(page.Sessions)), NextCursor: page.NextCursor}
	for _, sess := range page.Sessions {
		out.Sessions = append(out.Sessions, View(sess))
	}
	return c.JSON(http.StatusOK, out)
}

type codeBody struct {
	Code string `json:"code"`
}

func (s *Server) submitCode(c echo.Context) error {
	ref, err := refParam(c)
	if err != nil {
		return err
	}
	var b codeBody
	if err := decodeJSON(c, &b, true); err != nil {
		return err
	}
	if !callsession.ValidCode(b.Code) {
		return invalid("code must be a string of 4 to 10 digits")
	}
	sess, err := s.deps.Service.SubmitCode(c.Request().Context(), ref, b.Code)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, View(sess))
}

type resendBody struct {
	Channel string `json:"channel"`
}

func (s *Server) resend(c echo.Context) error {
	ref, err := refParam(c)
	if err != nil {
		return err
	}
	var b resendBody
	if err := decodeJSON(c, &b, false); err != nil {
		return err
	}
	sess, err := s.deps.Service.Resend(c.Request().Context(), ref, callsession.Channel(strings.ToUpper(b.Channel)))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, View(sess))
}

func (s *Server) cancel(c echo.Context) error {
	ref, err := refParam(c)
	if err != nil {
		return err
	}
	var b struct{}
	if err := decodeJSON(c, &b, false); err != nil {
		return err
	}
	sess, err := s.deps.Service.Cancel(c.Request().Context(), ref)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, View(sess))
}

// View is the session as the API shows it: everything of DESIGN §3, nothing internal.
func View(sess *callsession.Session) *callsession.Session {
	v := *sess
	v.Fingerprint = ""
	if v.Events == nil {
		v.Events = []callsession.Event{}
	}
	return &v
}

func invalid(msg string) error {
	return NewError(http.StatusBadRequest, string(callsession.CodeInvalidRequest), msg)
}

// decodeJSON reads the request body as one JSON object into v. A body is required when
// required is set; an optional one may be empty. Wrong media type is 415, a body over the
// limit 413, bad JSON or a field of the wrong type 400 with the field named.
func decodeJSON(c echo.Context, v any, required bool) error {
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return he // the body limit
		}
		return invalid("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if required {
			return invalid("a JSON body is required")
		}
		return nil
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return NewError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "send the body as application/json")
	}
	if !utf8.Valid(body) {
		return invalid("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return invalid("the body must be a JSON object")
			}
			return invalid(fmt.Sprintf("%s must be a %s", te.Field, te.Type.Kind()))
		}
		return invalid("the body is not valid JSON")
	}
	if dec.More() {
		return invalid("the body must hold one JSON object")
	}
	return nil
}
