package authsignal

import (
	"fmt"
	"testing"
	"time"
)

// benchBody is a Call Connect outcome delivery of typical size.
var benchBody = []byte(`{"version":1,"type":"call.connect.completed","id":"evt_2f1c0d9e6a7b4c1d","source":"authsignal",` +
	`"time":"2026-11-24T18:05:00.000Z","tenantId":"tenant_0123456789","data":{"referenceId":"CA0123456789abcdef",` +
	`"messageId":"msg_2f1c0d9e-6a7b-4c1d-9e8f-0123456789ab","status":"VERIFIED","phoneNumber":"+447400123456"}}`)

func BenchmarkSign(b *testing.B) {
	now := time.Unix(1795975500, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		_ = Sign("whsec_bench", now, benchBody)
	}
}

func BenchmarkVerify(b *testing.B) {
	now := time.Unix(1795975500, 0)
	good := Sign("whsec_bench", now, benchBody)
	// During a secret rotation the header carries a second signature, checked as well.
	rotating := good + ",v2=" + Sign("whsec_old", now, benchBody)[len("t=1795975500,v2="):]
	for _, c := range []struct {
		name, header string
		want         error
	}{
		{"valid", good, nil},
		{"rotating", rotating, nil},
		{"mismatch", Sign("whsec_other", now, benchBody), ErrSignatureMismatch},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				if err := Verify("whsec_bench", c.header, benchBody, now); err != c.want {
					b.Fatal(fmt.Sprint("Verify: ", err))
				}
			}
		})
	}
}
