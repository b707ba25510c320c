package manifest

import (
	"net"
	"strconv"
	"time"
)

// Deployment environments (server.env).
const (
	EnvDev  = "dev"
	EnvProd = "prod"
)

// Database modes (database.mode).
const (
	ModeManaged  = "managed"
	ModeExternal = "external"
)

// Drill scratch modes (drill.scratch).
const (
	// ScratchCluster restores into a throwaway cluster that dg initialises in
	// a temporary directory (needs the PostgreSQL server binaries).
	ScratchCluster = "cluster"
	// ScratchDatabase restores into a scratch database created on the
	// configured server (needs CREATEDB).
	ScratchDatabase = "database"
)

// MinSecretKeyBase is the shortest secret_key_base accepted in prod.
const MinSecretKeyBase = 64

// BuiltinName is the file name diagnostics use for the embedded default.
const BuiltinName = "<built-in>"

// Manifest is a dg node's topology. Field tags drive decoding, the JSON
// Schema (dg schema) and the DG_<FIELD_PATH> environment overrides:
// yaml names the key, doc documents it, enum/min/max constrain it, kind
// marks strings with a format (duration, bytes, hostport, url), secret masks
// it in `dg config explain`.
type Manifest struct {
	Server      Server      `yaml:"server" doc:"HTTP listener and deployment settings."`
	Database    Database    `yaml:"database" doc:"Where the event log lives."`
	Accounts    Accounts    `yaml:"accounts" doc:"Service-account bootstrap."`
	Tenants     []string    `yaml:"tenants" doc:"Tenant ids this node serves." unique:"true" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$"`
	Telemetry   Telemetry   `yaml:"telemetry" doc:"OpenTelemetry export and Prometheus metrics."`
	Backup      Backup      `yaml:"backup" doc:"Logical backups (pg_dump custom format)."`
	Drill       Drill       `yaml:"drill" doc:"Restore drills."`
	Projections Projections `yaml:"projections" doc:"Projection workers."`
	Workflows   Workflows   `yaml:"workflows" doc:"Review workflow runtime."`
	Events      Events      `yaml:"events" doc:"Event validation."`
	Seed        []string    `yaml:"seed" doc:"Datasets seeded on start when their tenant is empty (e.g. release-demo)." unique:"true" pattern:"^[a-z0-9][a-z0-9_-]*$"`

	// Path is the file the manifest came from; "" for the built-in default.
	Path string `yaml:"-"`

	// sources records where each field's value came from (see Explain).
	sources map[string]Source
}

// Server configures the HTTP listener.
type Server struct {
	Listen         string        `yaml:"listen" kind:"hostport" doc:"Listen address host:port. PORT overrides the port."`
	PublicHost     string        `yaml:"public_host" doc:"Public host name used to build URLs (PHX_HOST)."`
	Env            string        `yaml:"env" enum:"dev,prod" doc:"Deployment environment: dev or prod."`
	SecretKeyBase  string        `yaml:"secret_key_base" secret:"true" doc:"Session and CSRF signing secret; at least 64 characters in prod (SECRET_KEY_BASE)."`
	BodyLimit      int64         `yaml:"body_limit" kind:"bytes" min:"1024" doc:"Largest accepted request body: bytes, or a size such as 8MiB or 1MB."`
	DevTokens      bool          `yaml:"dev_tokens" doc:"Accept the built-in development tokens (dev-reader-token...). Default true in dev; prod must not enable it."`
	RequestTimeout time.Duration `yaml:"request_timeout" min:"1s" doc:"Longest time a request may take."`
}

// Database says where PostgreSQL is.
type Database struct {
	Mode     string  `yaml:"mode" enum:"managed,external" doc:"managed: dg runs its own PostgreSQL in data_dir; external: connect to url."`
	URL      string  `yaml:"url" kind:"url" secret:"password" doc:"postgres:// URL of an external database (DATABASE_URL). Required in external mode."`
	PoolSize int     `yaml:"pool_size" min:"1" max:"1000" doc:"Connection pool size (POOL_SIZE)."`
	Managed  Managed `yaml:"managed" doc:"Managed-mode cluster settings."`
}

// Managed configures the cluster dg runs itself in managed mode.
type Managed struct {
	DataDir string `yaml:"data_dir" doc:"Cluster data directory (initdb'd on first start)."`
	Port    int    `yaml:"port" min:"1" max:"65535" doc:"Port of the managed cluster; must differ from the server port."`
	BinDir  string `yaml:"bin_dir" doc:"Directory holding initdb and pg_ctl; default: PATH, then /usr/lib/postgresql/<ver>/bin."`
	RunAs   string `yaml:"run_as" doc:"OS user that runs the cluster when dg runs as root (default postgres)."`
}

// Accounts configures the service-account bootstrap.
type Accounts struct {
	File              string `yaml:"file" doc:"Bootstrap JSON file (DECISION_GRAPH_SERVICE_ACCOUNTS_FILE). Required in prod."`
	OperatorAccountID string `yaml:"operator_account_id" doc:"Account the console acts as (DECISION_GRAPH_OPERATOR_ACCOUNT_ID)."`
}

// Telemetry configures OpenTelemetry export and /metrics.
type Telemetry struct {
	OTLPEndpoint string `yaml:"otlp_endpoint" doc:"OTLP collector endpoint (host:port or http(s) URL); export is off when empty."`
	Protocol     string `yaml:"protocol" enum:"grpc,http/protobuf" doc:"OTLP protocol."`
	ServiceName  string `yaml:"service_name" doc:"service.name resource attribute."`
	Prometheus   bool   `yaml:"prometheus" doc:"Serve Prometheus metrics on /metrics."`
}

// Backup configures dg backup.
type Backup struct {
	Dir       string        `yaml:"dir" doc:"Directory backups are written to; must be creatable."`
	Retention Retention     `yaml:"retention" doc:"Which backups dg backup prune keeps (a backup kept by any rule is kept)."`
	MaxAge    time.Duration `yaml:"max_age" min:"1h" doc:"Newest backup older than this fails dg doctor."`
}

// Retention is a keep-last/daily/weekly/monthly policy.
type Retention struct {
	KeepLast    int `yaml:"keep_last" min:"0" max:"10000" doc:"Keep the newest N backups."`
	KeepDaily   int `yaml:"keep_daily" min:"0" max:"10000" doc:"Keep the newest backup of each of the last N days."`
	KeepWeekly  int `yaml:"keep_weekly" min:"0" max:"10000" doc:"Keep the newest backup of each of the last N ISO weeks."`
	KeepMonthly int `yaml:"keep_monthly" min:"0" max:"10000" doc:"Keep the newest backup of each of the last N months."`
}

// Drill configures restore drills.
type Drill struct {
	Scratch   string        `yaml:"scratch" enum:"cluster,database" doc:"Where a drill restores: cluster (throwaway cluster in a temp dir) or database (scratch database on the configured server)."`
	ReportDir string        `yaml:"report_dir" doc:"Directory drill reports are written to."`
	MaxAge    time.Duration `yaml:"max_age" min:"1h" doc:"Newest passing drill older than this fails dg doctor."`
}

// Projections configures the projection workers.
type Projections struct {
	BatchSize    int           `yaml:"batch_size" min:"1" max:"100000" doc:"Events applied per transaction."`
	PollInterval time.Duration `yaml:"poll_interval" min:"10ms" doc:"How often workers look for new events when not signalled."`
	AllowRebuild bool          `yaml:"allow_rebuild" doc:"Allow rebuilds through the API and console. Default true in dev, false in prod."`
}

// Workflows configures the review workflow runtime.
type Workflows struct {
	DefaultSLAHours int           `yaml:"default_sla_hours" min:"1" max:"8760" doc:"SLA of a review item when its template sets none."`
	EscalationRole  string        `yaml:"escalation_role" enum:"reader,writer,admin" doc:"Role overdue items are escalated to."`
	SweepInterval   time.Duration `yaml:"sla_sweep_interval" min:"1s" doc:"How often the scheduler escalates overdue items."`
	Notifications   Notifications `yaml:"notifications" doc:"Outbound notification delivery."`
}

// Notifications configures outbound delivery of workflow notifications.
type Notifications struct {
	Webhooks []Webhook `yaml:"webhooks" doc:"Webhooks that receive notifications."`
}

// Webhook is one notification receiver.
type Webhook struct {
	URL        string   `yaml:"url" kind:"url" doc:"http(s) URL notifications are POSTed to." required:"true"`
	Categories []string `yaml:"categories" enum:"assignment,approval,deadline_risk,escalation,failure" unique:"true" doc:"Categories sent; all when empty."`
	Secret     string   `yaml:"secret" secret:"true" doc:"HMAC-SHA256 signing secret for the X-DG-Signature header."`
}

// Events configures event validation.
type Events struct {
	Strict bool `yaml:"strict" doc:"Validate enum-like payload fields strictly instead of as non-empty strings."`
}

// Default returns the built-in defaults (the values a manifest with no keys
// gets). Fields whose default depends on server.env (dev_tokens,
// allow_rebuild) hold their dev values here.
func Default() *Manifest {
	return &Manifest{
		Server: Server{
			Listen:         "127.0.0.1:4100",
			PublicHost:     "localhost",
			Env:            EnvDev,
			BodyLimit:      1 << 20,
			DevTokens:      true,
			RequestTimeout: 30 * time.Second,
		},
		Database: Database{
			Mode:     ModeManaged,
			PoolSize: 10,
			Managed: Managed{
				DataDir: ".dg/pgdata",
				Port:    55433,
				RunAs:   "postgres",
			},
		},
		Tenants: []string{"default"},
		Telemetry: Telemetry{
			Protocol:    "grpc",
			ServiceName: "dg",
		},
		Backup: Backup{
			Dir:       ".dg/backups",
			Retention: Retention{KeepLast: 7, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6},
			MaxAge:    26 * time.Hour,
		},
		Drill: Drill{
			Scratch:   ScratchCluster,
			ReportDir: ".dg/drills",
			MaxAge:    8 * 24 * time.Hour,
		},
		Projections: Projections{
			BatchSize:    500,
			PollInterval: time.Second,
			AllowRebuild: true,
		},
		Workflows: Workflows{
			DefaultSLAHours: 24,
			EscalationRole:  "admin",
			SweepInterval:   15 * time.Second,
		},
		Seed: []string{},
	}
}

// IsProd reports whether server.env is prod.
func (m *Manifest) IsProd() bool { return m.Server.Env == EnvProd }

// ServerPort is the port of server.listen (0 when it has none).
func (m *Manifest) ServerPort() int {
	_, p, err := net.SplitHostPort(m.Server.Listen)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// DefaultTenant is the first tenant listed ("default" unless configured).
func (m *Manifest) DefaultTenant() string {
	if len(m.Tenants) == 0 {
		return "default"
	}
	return m.Tenants[0]
}
