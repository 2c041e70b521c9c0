package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fault kinds, the same as the simulated driver's (test/sim/csi.ts), plus the online growth boundary.
const (
	// ControllerExpandVolume fails with OutOfRange: external-resizer marks the PVC ControllerResizeInfeasible.
	FaultControllerInfeasible = "controllerInfeasible"
	// ControllerExpandVolume fails with Internal (final, not infeasible): external-resizer adds ControllerResizeError,
	// keeps ControllerResizeInProgress and retries with backoff. ("code": "Unavailable" makes it a non-final error,
	// which the resizer retries without any condition.)
	FaultTransientControllerError = "transientControllerError"
	// ControllerExpandVolume holds until the fault is removed or the caller's deadline passes (DeadlineExceeded).
	FaultStuck = "stuck"
	// NodeExpandVolume fails with InvalidArgument: kubelet marks NodeResizeInfeasible.
	FaultNodeInfeasible = "nodeInfeasible"
	// NodeExpandVolume fails with Internal: NodeResizeError while kubelet retries.
	FaultTransientNodeError = "transientNodeError"
	// NodeExpandVolume holds until the fault is removed or the caller's deadline passes.
	FaultStuckNode = "stuckNode"
	// A published (attached) disk at or below `size` cannot grow past it: ControllerExpandVolume fails with
	// FailedPrecondition (final, not infeasible: retried with backoff) until the volume is unpublished everywhere.
	FaultGrowthBoundary = "growthBoundary"
)

var faultKinds = map[string]bool{
	FaultControllerInfeasible: true, FaultTransientControllerError: true, FaultStuck: true,
	FaultNodeInfeasible: true, FaultTransientNodeError: true, FaultStuckNode: true, FaultGrowthBoundary: true,
}

// Fault is one entry of <state dir>/faults.json.
type Fault struct {
	// ID names the fault for its hit count in faults-hits.json; defaults to "<kind>-<index>".
	ID   string `json:"id,omitempty"`
	Kind string `json:"kind"`
	// Selection (all volumes when every field is empty): the claim "namespace/name" (from external-provisioner's
	// --extra-create-metadata), a regular expression on it, or the volume id (= the PV name).
	PVC       string `json:"pvc,omitempty"`
	PVCRegexp string `json:"pvcRegexp,omitempty"`
	Volume    string `json:"volume,omitempty"`
	// Message replaces the default error text; Code replaces the default gRPC code (e.g. "InvalidArgument").
	Message string `json:"message,omitempty"`
	Code    string `json:"code,omitempty"`
	// Times: how many operations the fault affects; 0 or absent = 1 for transient kinds, forever for the others.
	Times int `json:"times,omitempty"`
	// Size: the growth boundary (growthBoundary only), bytes or a quantity such as "48Mi".
	Size string `json:"size,omitempty"`
	// Delay (stuck and stuckNode only), a Go duration such as "3s": a slow operation, held this long and then carried
	// out, instead of held until the fault is removed.
	Delay string `json:"delay,omitempty"`
}

// FaultFile is <state dir>/faults.json. Tests write it (atomically: write a temporary file, rename it); the driver
// reads it on every call and never writes it. Hit counts go to faults-hits.json, which only the driver writes.
type FaultFile struct {
	Faults []Fault `json:"faults"`
}

type faults struct {
	store *Store
}

func (f *faults) path() string     { return filepath.Join(f.store.Dir, "faults.json") }
func (f *faults) hitsPath() string { return filepath.Join(f.store.Dir, "faults-hits.json") }

// load reads the fault file ("no file" = no faults); an invalid file is an error every call reports.
func (f *faults) load() ([]Fault, error) {
	data, err := os.ReadFile(f.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var file FaultFile
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", f.path(), err)
	}
	for i := range file.Faults {
		ft := &file.Faults[i]
		if !faultKinds[ft.Kind] {
			return nil, fmt.Errorf("%s: fault %d: unknown kind %q", f.path(), i, ft.Kind)
		}
		if ft.ID == "" {
			ft.ID = fmt.Sprintf("%s-%d", ft.Kind, i)
		}
		if ft.PVCRegexp != "" {
			if _, err := regexp.Compile(ft.PVCRegexp); err != nil {
				return nil, fmt.Errorf("%s: fault %s: pvcRegexp: %w", f.path(), ft.ID, err)
			}
		}
		if ft.Delay != "" {
			if d, err := time.ParseDuration(ft.Delay); err != nil || d < 0 {
				return nil, fmt.Errorf("%s: fault %s: delay %q is not a duration", f.path(), ft.ID, ft.Delay)
			}
		}
		if ft.Kind == FaultGrowthBoundary {
			if _, err := ParseSize(ft.Size); err != nil {
				return nil, fmt.Errorf("%s: fault %s: size: %w", f.path(), ft.ID, err)
			}
		}
	}
	return file.Faults, nil
}

// Hits reads faults-hits.json: fault id -> operations affected so far.
func (f *faults) Hits() map[string]int {
	hits := map[string]int{}
	if data, err := os.ReadFile(f.hitsPath()); err == nil {
		_ = json.Unmarshal(data, &hits)
	}
	return hits
}

func (ft *Fault) limit() int {
	if ft.Times > 0 {
		return ft.Times
	}
	if ft.Kind == FaultTransientControllerError || ft.Kind == FaultTransientNodeError {
		return 1
	}
	return 0 // forever
}

func (ft *Fault) selects(v *Volume) bool {
	if ft.Volume != "" && ft.Volume != v.ID {
		return false
	}
	if ft.PVC != "" && ft.PVC != v.PVC() {
		return false
	}
	if ft.PVCRegexp != "" && !regexp.MustCompile(ft.PVCRegexp).MatchString(v.PVC()) {
		return false
	}
	return true
}

// match returns the first active fault of these kinds selecting the volume; with consume it counts a hit (and a fault
// whose hits reached its times is no longer active).
func (f *faults) match(v *Volume, kinds []string, consume bool) (*Fault, error) {
	var found *Fault
	err := f.store.Locked(func() error {
		list, err := f.load()
		if err != nil {
			return err
		}
		hits := f.Hits()
		for i := range list {
			ft := &list[i]
			if !contains(kinds, ft.Kind) || !ft.selects(v) {
				continue
			}
			if limit := ft.limit(); limit > 0 && hits[ft.ID] >= limit {
				continue
			}
			found = ft
			if consume {
				hits[ft.ID]++
				return writeJSONAtomic(f.hitsPath(), hits)
			}
			return nil
		}
		return nil
	})
	return found, err
}

// present reports whether a fault of that id and kind is still in the file (a held operation waits for its removal).
func (f *faults) present(id string) bool {
	list, err := f.load()
	if err != nil {
		return true
	}
	for _, ft := range list {
		if ft.ID == id {
			return true
		}
	}
	return false
}

// hold blocks an operation while the stuck fault that caught it stays in the file (at most its delay, when it has
// one), or until ctx ends.
func (f *faults) hold(ctx context.Context, ft *Fault, op string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var until <-chan time.Time
	if ft.Delay != "" {
		d, _ := time.ParseDuration(ft.Delay)
		timer := time.NewTimer(d)
		defer timer.Stop()
		until = timer.C
	}
	for f.present(ft.ID) {
		select {
		case <-ctx.Done():
			return status.Errorf(codes.DeadlineExceeded, "%s held by injected fault %s", op, ft.ID)
		case <-until:
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// faultError is the gRPC error of a fault: its own code and message, or the defaults.
func faultError(ft *Fault, code codes.Code, message string) error {
	if ft.Code != "" {
		if c, ok := codeByName[ft.Code]; ok {
			code = c
		}
	}
	if ft.Message != "" {
		message = ft.Message
	}
	return status.Error(code, message)
}

var codeByName = func() map[string]codes.Code {
	m := map[string]codes.Code{}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m[c.String()] = c
	}
	return m
}()

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
