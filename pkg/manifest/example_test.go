package manifest_test

import (
	"fmt"
	"os"

	"github.com/decisiongraph/dg/pkg/manifest"
)

func ExampleLoadBytes() {
	yaml := []byte(`server:
  listen: 0.0.0.0:4100
  env: prod
database:
  mode: external
  url: ${DATABASE_URL}
  pool_sise: 20
`)
	env := func(name string) (string, bool) {
		if name == "DATABASE_URL" {
			return "postgres://dg:pw@db.internal:5432/dg", true
		}
		return "", false
	}
	m, diags, err := manifest.LoadBytes("dg.yaml", yaml, env)
	if err != nil {
		panic(err)
	}
	_ = diags.WriteText(os.Stdout)
	fmt.Println(diags.Summary())
	fmt.Println(m.Database.URL, m.ServerPort())
	// Output:
	// dg.yaml:3:8: accounts.file: is required when server.env is prod
	//     hint: set accounts.file (or DECISION_GRAPH_SERVICE_ACCOUNTS_FILE); create the file with dg accounts bootstrap
	// dg.yaml:3:8: server.secret_key_base: must be at least 64 characters when server.env is prod, got 0
	//     hint: generate one with: openssl rand -base64 48; pass it as SECRET_KEY_BASE
	// dg.yaml:7:3: database.pool_sise: unknown key "pool_sise" in database
	//     hint: did you mean "pool_size"?
	// 3 errors, 0 warnings
	// postgres://dg:pw@db.internal:5432/dg 4100
}
