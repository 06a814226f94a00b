// Package config defines drover's configuration and loads it from a YAML file, DROVER_* environment
// variables and command-line flags, in that order of precedence (flags win).
//
// It owns parsing and validation only. Other packages receive the typed sections they need
// (Database, Slurm, Hypervisor…); none of them reads viper or the environment.
package config

import "time"

// DefaultPath is where drover looks for its config file when --config is not given.
const DefaultPath = "/etc/drover/drover.yaml"

// Config is the whole of drover's configuration. The mapstructure tags are the YAML keys; the
// environment variable for a key is DROVER_ + the dotted path upper-cased with dots as
// underscores (database.url → DROVER_DATABASE_URL).
type Config struct {
	Log         Log          `mapstructure:"log"`
	Database    Database     `mapstructure:"database"`
	Slurm       Slurm        `mapstructure:"slurm"`
	Libvirt     Libvirt      `mapstructure:"libvirt"`
	Hypervisors []Hypervisor `mapstructure:"hypervisors"`
	Vnodes      Vnodes       `mapstructure:"vnodes"`
	Migration   Migration    `mapstructure:"migration"`
	Testbed     Testbed      `mapstructure:"testbed"`
	Agent       Agent        `mapstructure:"agent"`
	Health      Health       `mapstructure:"health"`
	Server      Server       `mapstructure:"server"`
	Control     Control      `mapstructure:"control"`
}

// Log configures zerolog.
type Log struct {
	Level  string `mapstructure:"level"`  // trace, debug, info, warn, error
	Format string `mapstructure:"format"` // console or json
	// File, when set, receives the log (appended) instead of standard error: Slurm discards what
	// its hooks print, so hook invocations log here.
	File string `mapstructure:"file"`
}

// Database is the PostgreSQL connection. The password belongs in URL, PasswordFile or PGPASSWORD;
// it is never logged.
type Database struct {
	URL            string        `mapstructure:"url"`
	PasswordFile   string        `mapstructure:"password_file"`
	MaxConns       int           `mapstructure:"max_conns"`
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
}

// Slurm is how drover talks to Slurm: slurmrestd for reads and job control, scontrol for node
// updates (the 22.05 REST API cannot update nodes).
type Slurm struct {
	RestURL    string        `mapstructure:"rest_url"`
	APIVersion string        `mapstructure:"api_version"` // v0.0.38
	User       string        `mapstructure:"user"`        // X-SLURM-USER-NAME
	Token      string        `mapstructure:"token"`       // JWT; prefer TokenFile or DROVER_SLURM_TOKEN
	TokenFile  string        `mapstructure:"token_file"`
	Conf       string        `mapstructure:"conf"`     // SLURM_CONF for scontrol
	Scontrol   string        `mapstructure:"scontrol"` // path of the scontrol binary
	Timeout    time.Duration `mapstructure:"timeout"`
}

// Libvirt holds settings shared by every hypervisor.
type Libvirt struct {
	DomainType     string        `mapstructure:"domain_type"` // qemu (TCG) or kvm
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
}

// Hypervisor is one libvirt host drover may place VMs on, with its BMC.
type Hypervisor struct {
	Name         string `mapstructure:"name"`
	URI          string `mapstructure:"uri"`           // qemu+tcp://198.18.0.2/system
	MigrationURI string `mapstructure:"migration_uri"` // tcp://198.18.0.2
	BMC          BMC    `mapstructure:"bmc"`
}

// BMC is a hypervisor's baseboard management controller, reached over IPMI.
type BMC struct {
	Host         string        `mapstructure:"host"`
	Port         int           `mapstructure:"port"`
	Username     string        `mapstructure:"username"`
	Password     string        `mapstructure:"password"` // prefer PasswordFile
	PasswordFile string        `mapstructure:"password_file"`
	CipherSuite  int           `mapstructure:"cipher_suite"`
	Interface    string        `mapstructure:"interface"` // lanplus (default), lan, open (in-band /dev/ipmi0)
	Timeout      time.Duration `mapstructure:"timeout"`
}

// Vnodes describes the Slurm nodes that are VMs: their names, addresses and the image they boot.
// Vnode i of Nodes (counting from 0) gets the address FirstAddress+i and a MAC derived from it, so
// a vnode keeps both wherever it runs.
type Vnodes struct {
	Nodes        string        `mapstructure:"nodes"`         // hostlist, e.g. vn[1-4]
	FirstAddress string        `mapstructure:"first_address"` // address/prefix of the first, e.g. 198.18.0.11/24
	Gateway      string        `mapstructure:"gateway"`       // optional default route inside the vnode
	Bridge       string        `mapstructure:"bridge"`        // bridge on every hypervisor, e.g. br0
	CPUs         int           `mapstructure:"cpus"`
	MemoryMiB    int           `mapstructure:"memory_mib"`
	Kernel       string        `mapstructure:"kernel"` // path on the hypervisors
	Initrd       string        `mapstructure:"initrd"` // path on the hypervisors
	Cmdline      string        `mapstructure:"cmdline"`
	SerialDir    string        `mapstructure:"serial_dir"` // console logs, read for liveness; empty: none
	StartTimeout time.Duration `mapstructure:"start_timeout"`
}

// Migration tunes live migrations.
type Migration struct {
	MaxDowntime   time.Duration `mapstructure:"max_downtime"`   // the guest's pause at switch-over
	BandwidthMiBs int           `mapstructure:"bandwidth_mibs"` // 0: unlimited
	AutoConverge  bool          `mapstructure:"auto_converge"`  // throttle vCPUs that dirty faster than the link
	// TLS encrypts the guest's memory on its way between the hypervisors' QEMUs (libvirt's
	// --tls; qemu.conf migrate_tls_x509_cert_dir on every hypervisor).
	TLS           bool          `mapstructure:"tls"`
	PostCopyAfter time.Duration `mapstructure:"post_copy_after"` // 0: never switch to post-copy
	// PostCopyWhenStuck switches to post-copy as soon as pre-copy cannot converge (the guest
	// dirties memory about as fast as it is sent, or the data left stops shrinking).
	PostCopyWhenStuck bool          `mapstructure:"post_copy_when_stuck"`
	Timeout           time.Duration `mapstructure:"timeout"` // pre-copy may run this long; then TimeoutAction
	// TimeoutAction: abort (the guest stays on the source) or postcopy (it finishes on the
	// destination, pulling the pages it still lacks).
	TimeoutAction string `mapstructure:"timeout_action"`
	// VerifyFor: watch the guest this long on the destination; 0, the default, is the quick check
	// (running there, its vCPUs advancing between two readings tens of milliseconds apart)
	VerifyFor time.Duration `mapstructure:"verify_for"`
	// QuietConsole: the guests may write nothing to their console for long. A watch of
	// verify_for ≥ 1 s then passes on vCPU progress alone; otherwise it also waits for a line in
	// the console log (vnodes.serial_dir). A kernel panic line fails either.
	QuietConsole bool `mapstructure:"quiet_console"`
	// MaxPerHypervisor bounds the unfinished migrations touching one hypervisor, outgoing and
	// incoming together; MaxConcurrent bounds them cluster-wide. 0 takes the default (1 and 2).
	MaxPerHypervisor int `mapstructure:"max_per_hypervisor"`
	MaxConcurrent    int `mapstructure:"max_concurrent"`
}

// Testbed describes the local testbed (scripts/testbed); empty on production hosts.
type Testbed struct {
	Dir   string `mapstructure:"dir"`
	Netns string `mapstructure:"netns"`
	// ControllerAddress is the host's address on the testbed network, where vnodes reach
	// slurmctld and test listeners.
	ControllerAddress string `mapstructure:"controller_address"`
}

// Defaults returns the configuration used for every key the file, environment and flags leave unset.
func Defaults() Config {
	return Config{
		Log:      Log{Level: "info", Format: "console"},
		Database: Database{MaxConns: 8, ConnectTimeout: 5 * time.Second},
		Slurm: Slurm{
			APIVersion: "v0.0.38",
			User:       "root",
			Scontrol:   "scontrol",
			Timeout:    10 * time.Second,
		},
		Libvirt: Libvirt{DomainType: "qemu", ConnectTimeout: 5 * time.Second},
		Vnodes:  Vnodes{CPUs: 1, MemoryMiB: 512, Cmdline: "console=ttyS0 quiet panic=-1", StartTimeout: 30 * time.Second},
		Migration: Migration{
			MaxDowntime: 50 * time.Millisecond,
			Timeout:     10 * time.Minute,

			PostCopyWhenStuck: true,
			TimeoutAction:     "abort",

			MaxPerHypervisor: 1,
			MaxConcurrent:    2,
		},
		Agent:   agentDefaults(),
		Server:  serverDefaults(),
		Control: controlDefaults(),
	}
}
