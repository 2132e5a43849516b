package daemon

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// fastCtx builds a fasthttp request context to call Server.Handler
// directly, so a test can inspect the request buffers afterwards.
type fastCtx struct{ ctx *fasthttp.RequestCtx }

func (f *fastCtx) init(method, path, apiKey, body string) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.Set("Authorization", apiKey)
	req.SetBodyString(body)
	f.ctx = &fasthttp.RequestCtx{}
	f.ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
}

var expositionLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^{}]*\})? ([-+]?[0-9][0-9.eE+-]*|\+Inf|NaN)$`)

// checkExposition validates the Prometheus text format line by line and
// that histogram buckets are cumulative.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	last := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		m := expositionLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("bad exposition line %q", line)
		}
		if strings.HasSuffix(m[1], "_bucket") {
			series := m[1] + regexp.MustCompile(`,?le="[^"]*"`).ReplaceAllString(m[2], "")
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				t.Fatal(err)
			}
			if v < last[series] {
				t.Fatalf("bucket not cumulative: %q", line)
			}
			last[series] = v
		}
	}
}
