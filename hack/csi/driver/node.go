package driver

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func (d *Driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: d.cfg.NodeID}, nil
}

func (d *Driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, c := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodePublishVolume bind-mounts the volume's tmpfs at the target path kubelet gives
// (<kubelet root>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount), creating it.
func (d *Driver) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if id == "" || target == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id and target path are needed")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	err := d.store.Locked(func() error {
		v, err := d.store.Get(id)
		if err != nil {
			return err
		}
		for _, p := range v.Publications {
			if p.TargetPath == target && p.NodeID == d.cfg.NodeID {
				if mounted, err := IsMountPoint(target); err != nil || mounted {
					return err
				}
			}
		}
		if err := d.ensureDisk(v); err != nil {
			return err
		}
		if err := Unmount(target); err != nil {
			return err
		}
		if err := BindMount(d.store.DiskPath(id), target, req.GetReadonly()); err != nil {
			return err
		}
		v.Publications = withoutTarget(v.Publications, d.cfg.NodeID, target)
		v.Publications = append(v.Publications, Publication{NodeID: d.cfg.NodeID, TargetPath: target, ReadOnly: req.GetReadonly()})
		return d.store.Put(v)
	})
	if err != nil {
		return nil, internal(err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *Driver) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	if id == "" || target == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id and target path are needed")
	}
	err := d.store.Locked(func() error {
		if err := Unmount(target); err != nil {
			return err
		}
		if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.cfg.Logf("NodeUnpublishVolume %s: removing %s: %v", id, target, err)
		}
		v, err := d.store.Get(id)
		if errors.Is(err, ErrNoVolume) {
			return nil
		}
		if err != nil {
			return err
		}
		v.Publications = withoutTarget(v.Publications, d.cfg.NodeID, target)
		return d.store.Put(v)
	})
	if err != nil {
		return nil, internal(err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func withoutTarget(list []Publication, node, target string) []Publication {
	out := list[:0:0]
	for _, p := range list {
		if p.NodeID != node || p.TargetPath != target {
			out = append(out, p)
		}
	}
	return out
}

// NodeExpandVolume grows the filesystem to the disk's size: mount -o remount,size= on the tmpfs, through the path
// kubelet gives (the pod's mount) when it is a mount point, else through the disk path.
func (d *Driver) NodeExpandVolume(ctx context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is missing")
	}
	if req.GetVolumeCapability().GetBlock() != nil {
		return nil, status.Error(codes.InvalidArgument, "block volumes are not supported")
	}
	vol, err := d.store.Get(id)
	if err != nil {
		return nil, internal(err)
	}
	if ft, err := d.faults.match(vol, []string{FaultStuckNode}, true); err != nil {
		return nil, internal(err)
	} else if ft != nil {
		if err := d.faults.hold(ctx, ft, "NodeExpandVolume"); err != nil {
			return nil, err
		}
	}
	ft, err := d.faults.match(vol, []string{FaultNodeInfeasible, FaultTransientNodeError}, true)
	if err != nil {
		return nil, internal(err)
	}
	if ft != nil && ft.Kind == FaultNodeInfeasible {
		return nil, faultError(ft, codes.InvalidArgument, "resize2fs: Operation not permitted while the filesystem is mounted read-only")
	}
	if ft != nil && ft.Kind == FaultTransientNodeError {
		return nil, faultError(ft, codes.Internal, fmt.Sprintf("could not get the block device size of volume %s: exit status 1", id))
	}
	var resp *csi.NodeExpandVolumeResponse
	err = d.store.Locked(func() error {
		v, err := d.store.Get(id)
		if err != nil {
			return err
		}
		cls, err := parseClass(v.Parameters)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		disk := v.CapacityBytes
		if required := req.GetCapacityRange().GetRequiredBytes(); required > 0 {
			if r := cls.rounding.Round(required); r > disk {
				return status.Errorf(codes.Internal, "the disk of volume %s is %s, below the requested %s: ControllerExpandVolume has not run", id, FormatSize(disk), FormatSize(r))
			}
		}
		want := d.fsBytes(disk)
		if err := d.ensureDisk(v); err != nil {
			return err
		}
		if want > v.FilesystemBytes || !d.tmpfsHasSize(v.ID, want) {
			path := d.store.DiskPath(id)
			if p := req.GetVolumePath(); p != "" {
				if mounted, _ := IsMountPoint(p); mounted {
					path = p
				}
			}
			if err := ResizeTmpfs(path, max(want, v.FilesystemBytes)); err != nil {
				return err
			}
			v.FilesystemBytes = max(want, v.FilesystemBytes)
			if err := d.store.Put(v); err != nil {
				return err
			}
		}
		resp = &csi.NodeExpandVolumeResponse{CapacityBytes: disk}
		return nil
	})
	if err != nil {
		return nil, internal(err)
	}
	return resp, nil
}

// tmpfsHasSize reports whether the volume's tmpfs is at least fsBytes (statfs of the disk path).
func (d *Driver) tmpfsHasSize(id string, fsBytes int64) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(d.store.DiskPath(id), &st); err != nil {
		return false
	}
	return int64(st.Blocks)*st.Bsize >= fsBytes
}

func (d *Driver) NodeGetVolumeStats(_ context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	id, path := req.GetVolumeId(), req.GetVolumePath()
	if id == "" || path == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id and volume path are needed")
	}
	if _, err := d.store.Get(id); err != nil {
		return nil, internal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, status.Errorf(codes.NotFound, "volume path %s: %v", path, err)
		}
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", path, err)
	}
	bs := st.Bsize
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}
