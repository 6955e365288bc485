package broker

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestAdminRoutesMatchOpenAPI keeps the OpenAPI document and the routes the
// admin API registers identical, both ways.
func TestAdminRoutesMatchOpenAPI(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	var documented, registered []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	for _, rt := range adminRouteTable {
		// ServeMux's {rest...} wildcard is a plain {rest} in OpenAPI.
		registered = append(registered, rt.method+" "+strings.ReplaceAll(rt.path, "...}", "}"))
	}
	slices.Sort(documented)
	slices.Sort(registered)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json documents %s, which is not registered", d)
		}
	}
	if len(registered) != len(slices.Compact(slices.Clone(registered))) {
		t.Errorf("duplicate routes: %v", registered)
	}
}

// TestOpenAPICheckedIn checks docs/openapi.json is the document served.
func TestOpenAPICheckedIn(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(openAPI) {
		t.Error("docs/openapi.json differs from broker/openapi.json")
	}
}
