package driver

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Cleanup unmounts what the driver mounted for this state dir: every recorded publication, every disk under the state
// dir, and every other mount of those disks' tmpfs (source csi-tmpfs-<id>, e.g. pods' bind mounts whose record was
// lost), deepest first. Volumes of other state dirs are left alone. With remove it deletes the state dir.
func Cleanup(stateDir string, remove bool, logf func(string, ...any)) error {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	var errs []error
	store := &Store{Dir: abs}
	ids := map[string]bool{}
	if entries, err := os.ReadDir(filepath.Join(abs, "disks")); err == nil {
		for _, e := range entries {
			ids[e.Name()] = true
		}
	}
	if vols, err := store.List(); err == nil {
		for _, v := range vols {
			ids[v.ID] = true
			for _, p := range v.Publications {
				if err := Unmount(p.TargetPath); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	all, err := Mounts()
	if err != nil {
		errs = append(errs, err)
	}
	var mounts []string
	for _, m := range all {
		under := strings.HasPrefix(m.MountPoint, abs+"/")
		if m.FSType == "tmpfs" && (under || ids[strings.TrimPrefix(m.Source, TmpfsSource+"-")]) {
			mounts = append(mounts, m.MountPoint)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := Unmount(m); err != nil {
			errs = append(errs, err)
		} else {
			logf("unmounted %s", m)
		}
	}
	if remove {
		if err := os.RemoveAll(abs); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
