package manifest

import (
	"bytes"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaAgreesWithLoader checks the generated schema with an
// independent JSON Schema validator: manifests the loader accepts pass it,
// and manifests with typos, bad enums or wrong types fail it.
func TestSchemaAgreesWithLoader(t *testing.T) {
	t.Parallel()
	raw, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("dg-manifest.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("dg-manifest.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	cases := []struct {
		file  string
		valid bool
	}{
		{"../../manifests/local.yaml", true},
		{"../../manifests/small-server.yaml", true},
		{goldenDir + "/valid-full.yaml", true},
		{goldenDir + "/valid-warnings.yaml", true},
		{goldenDir + "/typo-key.yaml", false},
		{goldenDir + "/misplaced-key.yaml", false},
		{goldenDir + "/bad-enum.yaml", false},
		{goldenDir + "/wrong-type.yaml", false},
		{goldenDir + "/bad-duration.yaml", false},
		{goldenDir + "/duplicate-tenants.yaml", false},
		{goldenDir + "/section-not-mapping.yaml", false},
		{goldenDir + "/out-of-range.yaml", false},
	}
	for _, c := range cases {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		err = sch.Validate(v)
		if c.valid && err != nil {
			t.Errorf("%s: the loader accepts it, the schema rejects it: %v", c.file, err)
		}
		if !c.valid && err == nil {
			t.Errorf("%s: the schema accepts an invalid manifest", c.file)
		}
	}
}
