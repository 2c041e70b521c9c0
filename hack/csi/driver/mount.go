package driver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// TmpfsSource is the "device" name of every tmpfs the driver mounts (shown in /proc/self/mountinfo and by `mount`), so
// that leftovers are easy to find: csi-tmpfs-<volume id>.
const TmpfsSource = "csi-tmpfs"

// MountTmpfs mounts a tmpfs of fsBytes at path (created when missing).
func MountTmpfs(id, path string, fsBytes int64) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(TmpfsSource+"-"+id, path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0777", fsBytes)); err != nil {
		return fmt.Errorf("mount tmpfs of %d bytes at %s: %w", fsBytes, path, err)
	}
	return nil
}

// ResizeTmpfs remounts the tmpfs mounted at path (or a bind mount of it: the size belongs to the filesystem) with a new
// size. Every bind mount of it, including those inside running containers, sees the new size at once.
func ResizeTmpfs(path string, fsBytes int64) error {
	if err := unix.Mount("", path, "", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d", fsBytes)); err != nil {
		return fmt.Errorf("mount -o remount,size=%d %s: %w", fsBytes, path, err)
	}
	return nil
}

// BindMount bind-mounts src at target (created when missing), read-only when asked.
func BindMount(src, target string, readOnly bool) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return err
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", src, target, err)
	}
	if readOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("read-only remount of %s: %w", target, err)
		}
	}
	return nil
}

// Unmount removes every mount stacked at path (none is fine).
func Unmount(path string) error {
	for i := 0; i < 16; i++ {
		mounted, err := IsMountPoint(path)
		if err != nil || !mounted {
			return err
		}
		if err := unix.Unmount(path, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
					return fmt.Errorf("umount -l %s: %w", path, err)
				}
				continue
			}
			return fmt.Errorf("umount %s: %w", path, err)
		}
	}
	return fmt.Errorf("umount %s: still mounted", path)
}

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo struct {
	MountPoint string
	FSType     string
	Source     string
	Options    string
}

// Mounts reads /proc/self/mountinfo.
func Mounts() ([]MountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []MountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+3 || len(fields) < 5 {
			continue
		}
		out = append(out, MountInfo{MountPoint: unescapeMount(fields[4]), FSType: fields[sep+1], Source: unescapeMount(fields[sep+2]), Options: fields[5]})
	}
	return out, sc.Err()
}

// IsMountPoint reports whether something is mounted exactly at path.
func IsMountPoint(path string) (bool, error) {
	mounts, err := Mounts()
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m.MountPoint == path {
			return true, nil
		}
	}
	return false, nil
}

// DriverMounts lists the mount points of every tmpfs this driver created, and their bind mounts (same source name).
func DriverMounts() ([]string, error) {
	mounts, err := Mounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		if m.FSType == "tmpfs" && strings.HasPrefix(m.Source, TmpfsSource+"-") {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
