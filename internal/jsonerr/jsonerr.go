// Package jsonerr describes JSON decoding errors without the bytes they read.
//
// encoding/json's errors, and segmentio/encoding's (the same types), quote the input: a
// syntax error up to 32 bytes of it, a type error the value. The documents decoded here
// (a provider's answer, a stored session) hold callers' numbers and codes, and the errors
// are logged and recorded in sessions' events.
package jsonerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// fieldPath is a path of Go identifiers, as struct fields make it ("data.referenceId").
var fieldPath = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// Describe is err with the input left out: for a value of the wrong type, the field and the
// type wanted; for a syntax error or a cut document, "not JSON". Other errors (those of the
// program's own checks) are returned as they are.
func Describe(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		// Not typ.Value: it holds the value itself, or its first 32 bytes.
		want := "another type"
		if typ.Type != nil {
			want = typ.Type.String()
		}
		// The field's path names struct fields, but a map's key in it is the input's.
		if !fieldPath.MatchString(typ.Field) {
			return fmt.Errorf("a value is not of type %s", want)
		}
		return fmt.Errorf("field %s is not of type %s", typ.Field, want)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not JSON")
	}
	return err
}
