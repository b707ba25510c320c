package ops_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/decisiongraph/dg/pkg/ops"
)

// A managed cluster as dg db start and dg up run it: build it from typed
// settings, start it (idempotent), use its URL, stop it on the way out
// only when this run started it.
func ExampleNewCluster() {
	ctx := context.Background()
	c, err := ops.NewCluster(ctx, ops.ClusterConfig{
		DataDir:  ".dg/pgdata",
		Port:     55433,
		RunAs:    "postgres", // used only when dg runs as root
		Database: ops.DefaultDatabase,
	})
	if errors.Is(err, ops.ErrBinariesMissing) {
		log.Fatal(err) // the message says: apt-get install -y postgresql
	}
	if err != nil {
		log.Fatal(err)
	}
	already, err := c.Start(ctx)
	switch {
	case errors.Is(err, ops.ErrPortInUse), errors.Is(err, ops.ErrForeignOwner), errors.Is(err, ops.ErrNewerDataDir):
		log.Fatal(err) // each message names its fix
	case err != nil:
		log.Fatal(err)
	}
	if !already {
		defer c.Stop(ctx)
	}
	fmt.Println(c.URL()) // postgres://dg:...@/dg?host=<data dir>&port=55433&sslmode=disable
}

// The host checks behind dg doctor.
func ExampleDoctor() {
	rep := ops.Doctor(context.Background(), ops.DoctorConfig{
		Cluster:      ops.ClusterConfig{DataDir: ".dg/pgdata", Port: 55433},
		ServerListen: "127.0.0.1:4100",
		BackupDir:    ".dg/backups",
	})
	for _, c := range rep.Checks {
		fmt.Println(c.Status, c.ID, c.Message)
	}
	if !rep.OK {
		fmt.Println("some check failed")
	}
}
