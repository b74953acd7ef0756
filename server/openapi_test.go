package server

import (
	"encoding/json"
	"flag"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var dumpRoutes = flag.String("dump-routes", "", "write the route table as JSON to this file (input of the OpenAPI generator)")

type openAPIDocument struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		OperationID string                     `json:"operationId"`
		Security    []map[string][]string      `json:"security"`
		Responses   map[string]json.RawMessage `json:"responses"`
	} `json:"paths"`
}

// TestOpenAPIInSync: every route of the mux is in the document with
// exactly its status codes and security, and the document has nothing
// else.
func TestOpenAPIInSync(t *testing.T) {
	e := newEnv(t)
	if *dumpRoutes != "" {
		type rt struct {
			Method, Path, Name string
			Auth               bool
			Codes              []int
		}
		var out []map[string]any
		for _, r := range e.srv.routes {
			out = append(out, map[string]any{"method": r.method, "path": r.path, "name": r.name, "auth": r.auth != anyone, "codes": r.codes})
		}
		b, _ := json.Marshal(out)
		os.WriteFile(*dumpRoutes, b, 0o644)
	}
	r := e.do("GET", "/v1/openapi.json", nil, nil)
	if r.status != 200 {
		t.Fatalf("openapi: %d", r.status)
	}
	var doc openAPIDocument
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	seen := map[string]bool{}
	for _, rt := range e.srv.routes {
		key := rt.method + " " + rt.path
		seen[key] = true
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s missing from openapi.json", key)
			continue
		}
		if op.OperationID != rt.name {
			t.Errorf("%s: operationId %q, want %q", key, op.OperationID, rt.name)
		}
		if (len(op.Security) > 0) != (rt.auth != anyone) {
			t.Errorf("%s: security %v, auth %v", key, op.Security, rt.auth)
		}
		var docCodes []int
		for c := range op.Responses {
			n, _ := strconv.Atoi(c)
			docCodes = append(docCodes, n)
		}
		want := slices.Clone(rt.codes)
		slices.Sort(want)
		slices.Sort(docCodes)
		if !slices.Equal(slices.Compact(want), docCodes) {
			t.Errorf("%s: documented codes %v, route codes %v", key, docCodes, want)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !seen[strings.ToUpper(m)+" "+p] {
				t.Errorf("openapi.json documents %s %s, which the mux does not serve", strings.ToUpper(m), p)
			}
		}
	}
}
