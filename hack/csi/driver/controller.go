package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// StorageClass parameters.
const (
	// ParamGranularity: sizes round up to a multiple of this quantity (default 1Mi; Azure's is 1Gi).
	ParamGranularity = "granularity"
	// ParamTiers: "premium" rounds up to Premium SSD v1 tiers counted in granularity units (4, 8, 16, ... 32767).
	ParamTiers = "tiers"
	// ParamMaxSize: larger sizes are refused with OutOfRange (default 32767Gi, Premium SSD v1's maximum).
	ParamMaxSize = "maxSize"
	// ParamGrowthBoundary: a published disk at or below this size cannot grow past it (Azure: 4Ti).
	ParamGrowthBoundary = "growthBoundary"
	// ParamSKU: the SKU name used in messages (informational).
	ParamSKU = "skuName"

	// Set by external-provisioner with --extra-create-metadata.
	paramPVCName      = "csi.storage.k8s.io/pvc/name"
	paramPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	paramPVName       = "csi.storage.k8s.io/pv/name"

	defaultMaxSize = 32767 * GiB
)

// classOf reads the sizing parameters a volume was created with.
type class struct {
	rounding Rounding
	maxSize  int64
	boundary int64 // 0 = none
	sku      string
}

func parseClass(params map[string]string) (class, error) {
	c := class{rounding: Rounding{Granularity: MiB}, maxSize: defaultMaxSize, sku: params[ParamSKU]}
	if c.sku == "" {
		c.sku = "StandardSSD_LRS"
	}
	var errs []string
	if s, ok := params[ParamGranularity]; ok {
		g, err := ParseSize(s)
		if err != nil || g <= 0 {
			errs = append(errs, fmt.Sprintf("%s: invalid size %q", ParamGranularity, s))
		} else {
			c.rounding.Granularity = g
		}
	}
	switch params[ParamTiers] {
	case "", "none":
	case "premium":
		c.rounding.Tiers = true
	default:
		errs = append(errs, fmt.Sprintf("%s: %q is neither \"premium\" nor \"none\"", ParamTiers, params[ParamTiers]))
	}
	if s, ok := params[ParamMaxSize]; ok {
		m, err := ParseSize(s)
		if err != nil || m <= 0 {
			errs = append(errs, fmt.Sprintf("%s: invalid size %q", ParamMaxSize, s))
		} else {
			c.maxSize = m
		}
	}
	if s, ok := params[ParamGrowthBoundary]; ok && s != "" {
		b, err := ParseSize(s)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: invalid size %q", ParamGrowthBoundary, s))
		} else {
			c.boundary = b
		}
	}
	for k := range params {
		switch k {
		case ParamGranularity, ParamTiers, ParamMaxSize, ParamGrowthBoundary, ParamSKU:
		default:
			if !strings.HasPrefix(k, "csi.storage.k8s.io/") {
				errs = append(errs, fmt.Sprintf("unknown parameter %q", k))
			}
		}
	}
	if len(errs) > 0 {
		return c, errors.New(strings.Join(errs, "; "))
	}
	return c, nil
}

// Identity service.

func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.cfg.Name, VendorVersion: Version}, nil
}

func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}}},
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{Type: csi.PluginCapability_VolumeExpansion_ONLINE}}},
	}}, nil
}

func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

// Controller service.

func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "volume capabilities are missing")
	}
	for _, c := range caps {
		if c.GetBlock() != nil {
			return status.Error(codes.InvalidArgument, "block volumes are not supported: every volume is a tmpfs")
		}
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "only mount volumes are supported")
		}
		if fs := c.GetMount().GetFsType(); fs != "" && fs != "tmpfs" && fs != "ext4" {
			return status.Errorf(codes.InvalidArgument, "fsType %q is not supported: every volume is a tmpfs", fs)
		}
	}
	return nil
}

func (d *Driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	id := req.GetName()
	if !validID(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid volume name %q", id)
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if req.GetVolumeContentSource() != nil {
		return nil, status.Error(codes.InvalidArgument, "volume content sources (snapshots, clones) are not supported")
	}
	params := req.GetParameters()
	cls, err := parseClass(params)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	required, limit := req.GetCapacityRange().GetRequiredBytes(), req.GetCapacityRange().GetLimitBytes()
	size := cls.rounding.Round(required)
	if limit > 0 && size > limit {
		return nil, status.Errorf(codes.OutOfRange, "the requested size %s rounds to %s (%s), above the limit %s", FormatSize(required), FormatSize(size), cls.rounding, FormatSize(limit))
	}
	if size > cls.maxSize {
		return nil, status.Errorf(codes.OutOfRange, "the requested size %s exceeds the maximum %s of %s", FormatSize(size), FormatSize(cls.maxSize), cls.sku)
	}
	var vol *Volume
	err = d.store.Locked(func() error {
		if existing, err := d.store.Get(id); err == nil {
			if existing.CapacityBytes < required || (limit > 0 && existing.CapacityBytes > limit) {
				return status.Errorf(codes.AlreadyExists, "volume %s exists with size %s", id, FormatSize(existing.CapacityBytes))
			}
			vol = existing
			return d.ensureDisk(existing)
		} else if !errors.Is(err, ErrNoVolume) {
			return err
		}
		v := &Volume{
			ID: id, CapacityBytes: size, FilesystemBytes: d.fsBytes(size), Parameters: params,
			PVCNamespace: params[paramPVCNamespace], PVCName: params[paramPVCName], PVName: params[paramPVName],
		}
		if err := MountTmpfs(id, d.store.DiskPath(id), v.FilesystemBytes); err != nil {
			return err
		}
		if err := d.store.Put(v); err != nil {
			_ = Unmount(d.store.DiskPath(id))
			return err
		}
		vol = v
		return nil
	})
	if err != nil {
		return nil, internal(err)
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      vol.ID,
		CapacityBytes: vol.CapacityBytes,
		VolumeContext: map[string]string{"granularity": FormatSize(cls.rounding.Granularity)},
	}}, nil
}

func (d *Driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is missing")
	}
	err := d.store.Locked(func() error {
		v, err := d.store.Get(id)
		if errors.Is(err, ErrNoVolume) {
			return nil
		}
		if err != nil {
			return err
		}
		if live := v.livePublications(); len(live) > 0 {
			return status.Errorf(codes.FailedPrecondition, "volume %s is still published at %s on node %s", id, live[0].TargetPath, live[0].NodeID)
		}
		path := d.store.DiskPath(id)
		if err := Unmount(path); err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return d.store.Remove(id)
	})
	if err != nil {
		return nil, internal(err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *Driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if _, err := d.store.Get(req.GetVolumeId()); err != nil {
		return nil, internal(err)
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: req.GetVolumeContext(), VolumeCapabilities: req.GetVolumeCapabilities(), Parameters: req.GetParameters(),
	}}, nil
}

func (d *Driver) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is missing")
	}
	vol, err := d.store.Get(id)
	if err != nil {
		return nil, internal(err)
	}
	if ft, err := d.faults.match(vol, []string{FaultStuck}, true); err != nil {
		return nil, internal(err)
	} else if ft != nil {
		if err := d.faults.hold(ctx, ft, "ControllerExpandVolume"); err != nil {
			return nil, err
		}
		if vol, err = d.store.Get(id); err != nil {
			return nil, internal(err)
		}
	}
	cls, err := parseClass(vol.Parameters)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	required, limit := req.GetCapacityRange().GetRequiredBytes(), req.GetCapacityRange().GetLimitBytes()
	target := cls.rounding.Round(required)
	if limit > 0 && target > limit {
		return nil, status.Errorf(codes.OutOfRange, "the requested size %s rounds to %s (%s), above the limit %s", FormatSize(required), FormatSize(target), cls.rounding, FormatSize(limit))
	}
	// Expanding to a size the disk already has succeeds (e.g. a request lowered back after a failure).
	if target <= vol.CapacityBytes {
		return &csi.ControllerExpandVolumeResponse{CapacityBytes: vol.CapacityBytes, NodeExpansionRequired: vol.FilesystemBytes < d.fsBytes(vol.CapacityBytes)}, nil
	}
	if target > cls.maxSize {
		return nil, status.Errorf(codes.OutOfRange, "the requested size %s exceeds the maximum %s of %s", FormatSize(target), FormatSize(cls.maxSize), cls.sku)
	}
	boundary := cls.boundary
	if ft, err := d.faults.match(vol, []string{FaultGrowthBoundary}, false); err != nil {
		return nil, internal(err)
	} else if ft != nil {
		boundary, _ = ParseSize(ft.Size)
	}
	if boundary > 0 && vol.Published() && vol.CapacityBytes <= boundary && target > boundary {
		return nil, status.Errorf(codes.FailedPrecondition,
			"failed to resize disk(%s): Cannot resize disk %s from %s to %s while it is attached to a running VM: "+
				"disks of %s or less can only be resized past %s when detached or the VM is deallocated (OperationNotAllowed)",
			id, id, FormatSize(vol.CapacityBytes), FormatSize(target), FormatSize(boundary), FormatSize(boundary))
	}
	ft, err := d.faults.match(vol, []string{FaultControllerInfeasible, FaultTransientControllerError}, true)
	if err != nil {
		return nil, internal(err)
	}
	if ft != nil && ft.Kind == FaultControllerInfeasible {
		return nil, faultError(ft, codes.OutOfRange, fmt.Sprintf("the requested size %s is not supported by disk %s", FormatSize(target), id))
	}
	if ft != nil && ft.Kind == FaultTransientControllerError {
		return nil, faultError(ft, codes.Internal, fmt.Sprintf("failed to resize disk(%s): the cloud API is temporarily unavailable (429 TooManyRequests)", id))
	}
	vol, err = d.store.Update(id, func(v *Volume) error {
		if target > v.CapacityBytes {
			v.CapacityBytes = target
		}
		return nil
	})
	if err != nil {
		return nil, internal(err)
	}
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: vol.CapacityBytes, NodeExpansionRequired: true}, nil
}
