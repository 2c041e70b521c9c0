package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Volume is what the driver knows about a volume, kept as <state dir>/volumes/<id>.json so that every driver process
// sharing the state dir (one per node, one of them also serving the controller) sees the same disks.
type Volume struct {
	ID string `json:"id"`
	// CapacityBytes is the size of the "disk" (the PV's capacity); the tmpfs is FilesystemBytes(CapacityBytes) once
	// node expansion has caught up.
	CapacityBytes int64 `json:"capacityBytes"`
	// FilesystemBytes is the size the tmpfs was last mounted or remounted with.
	FilesystemBytes int64             `json:"filesystemBytes"`
	Parameters      map[string]string `json:"parameters,omitempty"`
	PVCNamespace    string            `json:"pvcNamespace,omitempty"`
	PVCName         string            `json:"pvcName,omitempty"`
	PVName          string            `json:"pvName,omitempty"`
	Publications    []Publication     `json:"publications,omitempty"`
}

// Publication is one NodePublishVolume that has not been unpublished.
type Publication struct {
	NodeID     string `json:"nodeId"`
	TargetPath string `json:"targetPath"`
	ReadOnly   bool   `json:"readOnly,omitempty"`
}

// PVC is "namespace/name" of the claim the volume was created for ("" when unknown).
func (v *Volume) PVC() string {
	if v.PVCNamespace == "" && v.PVCName == "" {
		return ""
	}
	return v.PVCNamespace + "/" + v.PVCName
}

// Published reports whether any node has the volume published (Azure's "attached"). A recorded publication whose
// target is no longer a mount point (unmounted behind kubelet's back, e.g. by a stack teardown) does not count.
func (v *Volume) Published() bool { return len(v.livePublications()) > 0 }

func (v *Volume) livePublications() []Publication {
	var live []Publication
	for _, p := range v.Publications {
		if mounted, err := IsMountPoint(p.TargetPath); err != nil || mounted {
			live = append(live, p)
		}
	}
	return live
}

// Store is the state dir: volume records, the tmpfs mount points, the fault files. Changes are serialized across
// processes with flock on <state dir>/lock and within a process with a mutex.
type Store struct {
	Dir string
	mu  sync.Mutex
}

func NewStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{abs, filepath.Join(abs, "volumes"), filepath.Join(abs, "disks")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return &Store{Dir: abs}, nil
}

// DiskPath is where the volume's tmpfs is mounted in the driver's mount namespace.
func (s *Store) DiskPath(id string) string { return filepath.Join(s.Dir, "disks", id) }

func (s *Store) volumeFile(id string) string { return filepath.Join(s.Dir, "volumes", id+".json") }

// Locked runs fn holding the state lock.
func (s *Store) Locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking the state dir: %w", err)
	}
	defer func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN) }()
	return fn()
}

// ErrNoVolume: no record for the id.
var ErrNoVolume = errors.New("no such volume")

// Get reads a volume record (without the lock: records are replaced atomically).
func (s *Store) Get(id string) (*Volume, error) {
	if !validID(id) {
		return nil, ErrNoVolume
	}
	data, err := os.ReadFile(s.volumeFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoVolume
	}
	if err != nil {
		return nil, err
	}
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("volume record %s: %w", id, err)
	}
	return &v, nil
}

// Put writes a volume record atomically; call it under Locked.
func (s *Store) Put(v *Volume) error {
	return writeJSONAtomic(s.volumeFile(v.ID), v)
}

// Remove deletes a volume record; call it under Locked.
func (s *Store) Remove(id string) error {
	err := os.Remove(s.volumeFile(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// List returns every volume record, sorted by id.
func (s *Store) List() ([]*Volume, error) {
	entries, err := os.ReadDir(filepath.Join(s.Dir, "volumes"))
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		v, err := s.Get(strings.TrimSuffix(e.Name(), ".json"))
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Update reads, changes and writes a volume record under the lock.
func (s *Store) Update(id string, fn func(v *Volume) error) (*Volume, error) {
	var out *Volume
	err := s.Locked(func() error {
		v, err := s.Get(id)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
		out = v
		return s.Put(v)
	})
	return out, err
}

func writeJSONAtomic(path string, value any) error {
	data, err := json.MarshalIndent(value, "", "  ")
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", path, os.Getpid())
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// validID: volume ids become file names; external-provisioner's are pvc-<uid>.
func validID(id string) bool {
	if id == "" || len(id) > 200 || id == "." || id == ".." {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
