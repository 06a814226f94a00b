package scheduler

import "time"

// Host is a hypervisor as the planner sees it: a snapshot, never a live handle. The zero value of
// every optional field means "unknown" or "none", never "healthy": a host without KPIs is dropped
// by the stale-KPI filter, a host without temperature bounds gets a neutral thermal score.
type Host struct {
	Name      string
	Rack      string // key into Config.Racks; "" = no rack power cap
	State     string // active, draining, drained, maintenance, down ("" = active)
	Reachable bool   // libvirt answered when the snapshot was taken

	// Capacity and what its vnodes already hold.
	CPUs           int     // physical cores (or hardware threads, as the site counts them)
	MemoryMiB      int64   // RAM for VMs
	AllocCPUs      int     // sum of its vnodes' vCPUs
	AllocMemoryMiB int64   // sum of its vnodes' memory
	VNodes         int     // vnodes running there now
	FreeMemoryMiB  int64   // libvirt's free memory, negative when unknown; used when MemoryMiB is 0
	CPUOvercommit  float64 // vCPUs allowed per CPU; 0 = Config.CPUOvercommit
	MemOvercommit  float64 // memory allowed per MiB; 0 = Config.MemOvercommit

	Features []string // Slurm-style node features, e.g. "ib", "avx512", "gpu"

	// KPIs, all sampled at KPIAt.
	KPIAt         time.Time // zero = never: the host is dropped as stale
	Load1         float64   // 1-minute load average
	CPUBusy       float64   // fraction of CPU time busy, [0, 1]
	PredictedLoad float64   // load1 the predictor expects over its horizon (0 = no prediction)
	PowerWatts    float64   // draw now (0 = no reading)
	PowerCapWatts float64   // per-host cap (0 = none)
	TempC         float64   // hottest relevant sensor now (0 = no reading)
	TempWarnC     float64   // its warning bound (0 = unknown)
	TempCritC     float64   // its critical bound (0 = unknown)
	Health        string    // ok, warning, critical, unknown ("" = unknown)
	BreachAt      time.Time // when a health threshold is predicted to be crossed; zero = none predicted

	// Recent trouble: counts within the recent past and the time of the latest one.
	RecentFailures   int
	LastFailureAt    time.Time
	RecentMigrations int
	LastMigrationAt  time.Time
}

// Request is one vnode to place.
type Request struct {
	VNode     string
	JobID     int64
	CPUs      int
	MemoryMiB int64
	// Constraint is a Slurm-style feature expression: "ib", "ib&avx512", "ib,avx512" (comma is
	// AND, a plain list), "a100|h100", "ib&a100|ib&h100" (& binds tighter than |). No parentheses,
	// no counts. Every name must be a feature of some host in the snapshot.
	Constraint string
	TimeLimit  time.Duration // the job's time limit; 0 = unlimited (any predicted breach drops a host)
	// JobHosts names the host of each of the job's vnodes already placed (one entry per vnode,
	// so a host may repeat). Hosts not in the snapshot are ignored.
	JobHosts []string
	Hints    Hints
	Watts    float64   // estimated draw of the new vnode; 0 = Config.WattsPerCPU × CPUs
	Now      time.Time // when the decision is made; zero = the pipeline's clock
}

// Hints are the job's placement wishes.
type Hints struct {
	Spread    bool `json:"spread,omitempty"`     // hard: never on a host holding another of the job's vnodes
	Pack      bool `json:"pack,omitempty"`       // soft but dominant: a host holding the job's vnodes wins when feasible
	NoMigrate bool `json:"no_migrate,omitempty"` // the vnode will not be moved later: hosts in warning are dropped too
}

// Verdict is what the planner thought of one host.
type Verdict struct {
	Host     string  `json:"host"`
	Feasible bool    `json:"feasible"`
	Filter   string  `json:"filter,omitempty"` // the filter that dropped it
	Reason   string  `json:"reason,omitempty"` // reason code when not feasible
	Detail   string  `json:"detail,omitempty"`
	Score    float64 `json:"score,omitempty"`  // total in [0, 100] when feasible
	Scores   []Score `json:"scores,omitempty"` // each scorer's part of Score
}

// Score is one scorer's view of one host: Raw in the scorer's own unit, Normalized in [0, 100],
// Weighted = Weight × Normalized. A verdict's total is Σ Weighted / Σ Weight.
type Score struct {
	Scorer     string  `json:"scorer"`
	Raw        float64 `json:"raw"`
	Normalized float64 `json:"normalized"`
	Weight     float64 `json:"weight"`
	Weighted   float64 `json:"weighted"`
}

// Decision is a placement: the chosen host ("" when none fits) and why.
//
// With explain traces (Pipeline.Place, or Decide with explain set) Verdicts holds one verdict per
// host in name order; without, only the chosen host's. Dropped always counts hosts per reason.
type Decision struct {
	VNode    string         `json:"vnode"`
	JobID    int64          `json:"job_id,omitempty"`
	Host     string         `json:"host"`
	Policy   string         `json:"policy"`
	Reason   string         `json:"reason"`
	Seed     int64          `json:"seed,omitempty"` // tie-break seed; 0 = ties go to the first name
	At       time.Time      `json:"at,omitzero"`
	Hosts    int            `json:"hosts,omitempty"`    // hosts considered
	Feasible int            `json:"feasible,omitempty"` // hosts that passed every filter
	Dropped  map[string]int `json:"dropped,omitempty"`  // reason code → hosts dropped
	Weights  []Weight       `json:"weights,omitempty"`  // the weights this decision used
	Warnings []string       `json:"warnings,omitempty"` // e.g. a scorer out of range
	Verdicts []Verdict      `json:"verdicts"`
}

// Weight is one scorer's weight in a decision.
type Weight struct {
	Scorer string  `json:"scorer"`
	Weight float64 `json:"weight"`
}

// Placer chooses a host for a vnode. Implementations are pure: same input, same decision.
type Placer interface {
	Place(req Request, hosts []Host) Decision
}

// Reason codes say why a host was dropped. A dropped host is an answer, not an error.
const (
	ReasonInvalid      = "invalid-host"   // the snapshot's data for the host makes no sense
	ReasonUnreachable  = "unreachable"    // libvirt did not answer
	ReasonNotActive    = "not-active"     // draining, drained, maintenance or down
	ReasonStaleKPIs    = "stale-kpis"     // no KPIs newer than Config.StaleAfter
	ReasonUnhealthy    = "unhealthy"      // health critical
	ReasonBreachSoon   = "breach-soon"    // a breach predicted before the job ends (or warning + no-migrate)
	ReasonNoCPU        = "no-cpu"         // not enough vCPUs left, overcommit included
	ReasonNoMemory     = "no-memory"      // not enough memory left, overcommit included
	ReasonPowerCap     = "power-cap"      // the host's power cap would be exceeded
	ReasonRackPowerCap = "rack-power-cap" // the rack's power cap would be exceeded
	ReasonFeatures     = "features"       // the constraint does not match the host's features
	ReasonAntiAffinity = "anti-affinity"  // spread hint: the host already runs one of the job's vnodes
)
