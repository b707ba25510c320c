package ops_test

import (
	"testing"

	"github.com/decisiongraph/dg/internal/pgtest"
)

// TestMain is the only one in package ops_test: every pkg/ops test that
// needs a database uses pgtest, whose throwaway cluster Main tears down.
func TestMain(m *testing.M) { pgtest.Main(m) }
