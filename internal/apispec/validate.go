package apispec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// Violation is one exchange the document does not describe.
type Violation struct {
	Method string
	Path   string // the request target as sent, query included
	Status int
	Msg    string // kin-openapi's message, or why the exchange is undescribed
}

func (v *Violation) Error() string {
	return fmt.Sprintf("openapi: %s %s → %d: %s", v.Method, v.Path, v.Status, v.Msg)
}

// Exchange is one request and the answer it got, bodies read in full.
type Exchange struct {
	Request    *http.Request // URL, method and headers; its Body is ignored
	RequestURI string        // the target as sent; "" = Request.URL.RequestURI()
	ReqBody    []byte
	Status     int
	Header     http.Header
	Body       []byte
}

// options: every response status, header and body is checked; security is
// not (the daemon authenticates, and a test may probe with bad keys on
// purpose: its 401 is then checked like any answer).
func options() *openapi3filter.Options {
	o := &openapi3filter.Options{
		IncludeResponseStatus:             true,
		RejectWhenRequestBodyNotSpecified: true,
		AuthenticationFunc:                openapi3filter.NoopAuthenticationFunc,
	}
	o.WithCustomSchemaErrorFunc(schemaMsg)
	return o
}

// schemaMsg names the failing member and the reason, never the value: a
// body may hold key material (a plaintext backup export), which must not
// reach test logs.
func schemaMsg(err *openapi3.SchemaError) string {
	return fmt.Sprintf("at /%s: %s", strings.Join(err.JSONPointer(), "/"), err.Reason)
}

// Check validates one exchange and returns a *Violation, or nil.
//
// The rule for requests the document does not describe (a wrong field type,
// an unknown path, a percent-encoded segment, two Authorization headers):
// the daemon must refuse them with an answer the document does describe, the
// Error envelope under a documented status. Answering one 200 is a
// violation (the daemon accepts what the document forbids), and so is any
// answer the document does not describe, whatever the request.
func (s *Spec) Check(ctx context.Context, ex *Exchange) error {
	uri := ex.RequestURI
	if uri == "" {
		uri = ex.Request.URL.RequestURI()
	}
	viol := func(format string, args ...any) error {
		return &Violation{Method: ex.Request.Method, Path: uri, Status: ex.Status, Msg: fmt.Sprintf(format, args...)}
	}
	if why := undescribedTarget(uri, ex.Request.Header); why != "" {
		if err := s.checkRefusal(ex); err != nil {
			return viol("%s, and the answer is not a documented refusal: %v", why, err)
		}
		return nil
	}
	// The daemon reads every body as JSON whatever its Content-Type (Vertex
	// clients send none), so the document's one media type applies.
	req := ex.Request.Clone(ctx)
	if len(ex.ReqBody) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Body = io.NopCloser(bytes.NewReader(ex.ReqBody))
	req.ContentLength = int64(len(ex.ReqBody))

	route, params, err := s.router.FindRoute(req)
	if err != nil {
		if rerr := s.checkRefusal(ex); rerr != nil {
			return viol("%v, and the answer is not a documented refusal: %v", err, rerr)
		}
		return nil
	}
	opts := options()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	resp := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.Status, Header: ex.Header, Options: opts}
	resp.SetBodyBytes(ex.Body)
	if err := openapi3filter.ValidateResponse(ctx, resp); err != nil {
		return viol("%v", err)
	}
	if reqErr != nil && ex.Status < 400 {
		return viol("the daemon accepted a request the document does not describe: %v", reqErr)
	}
	return nil
}

// undescribedTarget names what makes a request target or its headers
// something no operation describes, before any routing: the router would
// decode or collapse these, while the daemon refuses them as sent.
func undescribedTarget(uri string, h http.Header) string {
	path, _, _ := strings.Cut(uri, "?")
	if !strings.HasPrefix(path, "/") {
		return "request target is not an absolute path"
	}
	if strings.ContainsAny(path, "%\\") {
		return "percent-encoded or backslashed path"
	}
	if path != "/" {
		for _, seg := range strings.Split(path[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return "empty or dot path segment"
			}
		}
	}
	if len(h.Values("Authorization")) > 1 {
		return "two Authorization headers"
	}
	return ""
}

// refusalStatus maps each status a refusal of an undescribed request may
// carry to the components.responses entry that documents it.
var refusalStatus = map[int]string{
	400: "BadRequest",
	401: "Unauthorized",
	404: "NotFound",
	500: "Internal",
	503: "Overloaded",
}

// checkRefusal validates an answer to a request no operation describes
// against the shared error responses.
func (s *Spec) checkRefusal(ex *Exchange) error {
	name, ok := refusalStatus[ex.Status]
	if !ok {
		return fmt.Errorf("status %d is not a documented refusal", ex.Status)
	}
	ref := s.Doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("components.responses.%s is missing", name)
	}
	for hname, h := range ref.Value.Headers {
		if h.Value != nil && h.Value.Required && ex.Header.Get(hname) == "" {
			return fmt.Errorf("response header %s is required", hname)
		}
	}
	mt := ref.Value.Content.Get(ex.Header.Get("Content-Type"))
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return fmt.Errorf("Content-Type %q is not documented for %s", ex.Header.Get("Content-Type"), name)
	}
	var v any
	if err := json.Unmarshal(ex.Body, &v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.SetSchemaErrorMessageCustomizer(schemaMsg)); err != nil {
		return fmt.Errorf("body does not match components.responses.%s: %w", name, err)
	}
	return nil
}
