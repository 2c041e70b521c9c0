// Package driver is a CSI driver for tests: every volume is a tmpfs with a size limit, mounted under a state dir,
// bind-mounted into pods, and grown online by remounting it with a larger size.
package driver

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// DefaultName is the driver (CSIDriver object) name.
const DefaultName = "tmpfs.csi.test.cnpg.io"

// Version is reported by GetPluginInfo.
const Version = "0.1.0"

// Config of one driver process.
type Config struct {
	Name   string
	NodeID string
	// Endpoint: the CSI socket path (kubelet and the sidecars connect to it).
	Endpoint string
	// RegistrationDir: kubelet's plugins_registry dir; "" serves no registration socket.
	RegistrationDir string
	StateDir        string
	// FilesystemOverhead: the tmpfs is this much smaller than the disk (ext4 metadata and journal).
	FilesystemOverhead float64
	Logf               func(format string, args ...any)
}

// Driver implements the CSI Identity, Controller and Node services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg    Config
	store  *Store
	faults *faults
}

func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.NodeID == "" {
		return nil, errors.New("a node id is needed")
	}
	if cfg.StateDir == "" || cfg.Endpoint == "" {
		return nil, errors.New("a state dir and an endpoint are needed")
	}
	if cfg.FilesystemOverhead < 0 || cfg.FilesystemOverhead >= 1 {
		return nil, fmt.Errorf("filesystem overhead %v is not in [0, 1)", cfg.FilesystemOverhead)
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	store, err := NewStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	return &Driver{cfg: cfg, store: store, faults: &faults{store: store}}, nil
}

// Store gives tests and the cleanup command the state dir.
func (d *Driver) Store() *Store { return d.store }

// Server is a running driver: the CSI socket and (optionally) kubelet's registration socket.
type Server struct {
	csiServer, regServer *grpc.Server
	regPath              string
	errs                 chan error
}

// Start listens on the CSI socket and the registration socket and serves them until Stop.
func (d *Driver) Start() (*Server, error) {
	if err := d.remountDisks(); err != nil {
		return nil, err
	}
	srv := &Server{errs: make(chan error, 2)}
	lis, err := listenUnix(d.cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	srv.csiServer = grpc.NewServer(grpc.UnaryInterceptor(d.logCalls))
	csi.RegisterIdentityServer(srv.csiServer, d)
	csi.RegisterControllerServer(srv.csiServer, d)
	csi.RegisterNodeServer(srv.csiServer, d)
	go func() { srv.errs <- srv.csiServer.Serve(lis) }()

	if d.cfg.RegistrationDir != "" {
		srv.regPath = filepath.Join(d.cfg.RegistrationDir, d.cfg.Name+"-reg.sock")
		regLis, err := listenUnix(srv.regPath)
		if err != nil {
			srv.csiServer.Stop()
			return nil, err
		}
		srv.regServer = grpc.NewServer()
		registerapi.RegisterRegistrationServer(srv.regServer, &registration{d: d})
		go func() { srv.errs <- srv.regServer.Serve(regLis) }()
	}
	d.cfg.Logf("%s %s serving node %s: CSI %s, registration %s, state %s", d.cfg.Name, Version, d.cfg.NodeID, d.cfg.Endpoint, srv.regPath, d.store.Dir)
	return srv, nil
}

// Errors delivers a serve loop's failure.
func (s *Server) Errors() <-chan error { return s.errs }

// Stop closes both sockets (the registration socket first, so that kubelet unregisters the plugin) and removes them.
func (s *Server) Stop() {
	if s.regServer != nil {
		s.regServer.Stop()
		_ = os.Remove(s.regPath)
	}
	s.csiServer.Stop()
}

func listenUnix(path string) (net.Listener, error) {
	if len(path) > 107 {
		return nil, fmt.Errorf("socket path %s is %d bytes long, more than a unix socket address holds (107)", path, len(path))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return net.Listen("unix", path)
}

func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	switch method {
	case "Probe", "GetPluginInfo", "GetPluginCapabilities", "ControllerGetCapabilities", "NodeGetCapabilities", "NodeGetVolumeStats":
		if err == nil {
			return resp, err
		}
	}
	if err != nil {
		d.cfg.Logf("%s %s: %v (%s)", method, describe(req), err, time.Since(start).Round(time.Millisecond))
	} else {
		d.cfg.Logf("%s %s: ok (%s)", method, describe(req), time.Since(start).Round(time.Millisecond))
	}
	return resp, err
}

func describe(req any) string {
	type volumeRequest interface{ GetVolumeId() string }
	switch r := req.(type) {
	case *csi.CreateVolumeRequest:
		return fmt.Sprintf("%s %d", r.GetName(), r.GetCapacityRange().GetRequiredBytes())
	case *csi.ControllerExpandVolumeRequest:
		return fmt.Sprintf("%s %d", r.GetVolumeId(), r.GetCapacityRange().GetRequiredBytes())
	case *csi.NodeExpandVolumeRequest:
		return fmt.Sprintf("%s %d %s", r.GetVolumeId(), r.GetCapacityRange().GetRequiredBytes(), r.GetVolumePath())
	case *csi.NodePublishVolumeRequest:
		return fmt.Sprintf("%s %s", r.GetVolumeId(), r.GetTargetPath())
	case *csi.NodeUnpublishVolumeRequest:
		return fmt.Sprintf("%s %s", r.GetVolumeId(), r.GetTargetPath())
	case volumeRequest:
		return r.GetVolumeId()
	}
	return ""
}

// remountDisks mounts the tmpfs of every recorded volume that is not mounted (a volume's data does not survive the
// driver's mounts being removed, but its record and size do).
func (d *Driver) remountDisks() error {
	return d.store.Locked(func() error {
		vols, err := d.store.List()
		if err != nil {
			return err
		}
		for _, v := range vols {
			if err := d.ensureDisk(v); err != nil {
				return err
			}
		}
		return nil
	})
}

// ensureDisk mounts the volume's tmpfs at its disk path when nothing is mounted there.
func (d *Driver) ensureDisk(v *Volume) error {
	path := d.store.DiskPath(v.ID)
	mounted, err := IsMountPoint(path)
	if err != nil || mounted {
		return err
	}
	size := v.FilesystemBytes
	if size == 0 {
		size = FilesystemBytes(v.CapacityBytes, d.cfg.FilesystemOverhead)
	}
	d.cfg.Logf("mounting the missing tmpfs of %s at %s (%d bytes)", v.ID, path, size)
	return MountTmpfs(v.ID, path, size)
}

func (d *Driver) fsBytes(disk int64) int64 { return FilesystemBytes(disk, d.cfg.FilesystemOverhead) }

// internal wraps unexpected failures as gRPC Internal errors (gRPC status errors pass through).
func internal(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, ErrNoVolume) {
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// registration answers kubelet's plugin watcher on <kubelet root>/plugins_registry/<name>-reg.sock.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	d *Driver
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.d.cfg.Name,
		Endpoint:          r.d.cfg.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if st.PluginRegistered {
		r.d.cfg.Logf("kubelet registered %s on node %s", r.d.cfg.Name, r.d.cfg.NodeID)
	} else {
		r.d.cfg.Logf("kubelet refused to register %s: %s", r.d.cfg.Name, st.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}
