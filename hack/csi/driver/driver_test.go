package driver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// env is one driver process's worth of sockets and dirs in a temporary directory, with gRPC clients on its sockets.
type env struct {
	t          *testing.T
	dir        string
	state      string
	kubelet    string
	driver     *Driver
	conn       *grpc.ClientConn
	identity   csi.IdentityClient
	controller csi.ControllerClient
	node       csi.NodeClient
	logs       *logBuffer
}

type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(sprintf(format, args...)))
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the driver mounts tmpfs")
	}
}

// start runs a driver in a temporary dir; every mount it made is removed when the test ends, also on failure.
func start(t *testing.T, nodeID string) *env {
	t.Helper()
	requireRoot(t)
	// A short dir: unix socket paths are limited to 107 bytes, and t.TempDir's names are long.
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, state: filepath.Join(dir, "state"), kubelet: filepath.Join(dir, "kubelet"), logs: &logBuffer{}}
	t.Cleanup(func() { e.cleanupMounts() })
	return e.startDriver(nodeID)
}

func (e *env) startDriver(nodeID string) *env {
	t := e.t
	d, err := New(Config{
		NodeID: nodeID, StateDir: e.state, FilesystemOverhead: 0.03, Logf: e.logs.logf,
		Endpoint:        filepath.Join(e.kubelet, "plugins", DefaultName, "csi.sock"),
		RegistrationDir: filepath.Join(e.kubelet, "plugins_registry"),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := d.Start()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+d.cfg.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	e.driver, e.conn = d, conn
	e.identity, e.controller, e.node = csi.NewIdentityClient(conn), csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	return e
}

// cleanupMounts unmounts everything under the test dir and fails the test if a mount is left.
func (e *env) cleanupMounts() {
	if err := Cleanup(e.state, false, func(string, ...any) {}); err != nil {
		e.t.Errorf("cleanup: %v", err)
	}
	mounts, _ := Mounts()
	for i := len(mounts) - 1; i >= 0; i-- {
		if strings.HasPrefix(mounts[i].MountPoint, e.dir+"/") {
			_ = unix.Unmount(mounts[i].MountPoint, unix.MNT_DETACH)
			e.t.Errorf("left mounted: %s", mounts[i].MountPoint)
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

var mountCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

func (e *env) create(name string, bytes int64, params map[string]string) *csi.Volume {
	e.t.Helper()
	p := map[string]string{paramPVCNamespace: "ns", paramPVCName: name, paramPVName: "pv-" + name}
	for k, v := range params {
		p[k] = v
	}
	resp, err := e.controller.CreateVolume(ctx(e.t), &csi.CreateVolumeRequest{
		Name: "pv-" + name, CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}, VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: p,
	})
	if err != nil {
		e.t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume()
}

// target is where kubelet would ask for the volume of a pod.
func (e *env) target(pod, pv string) string {
	return filepath.Join(e.kubelet, "pods", pod, "volumes", "kubernetes.io~csi", pv, "mount")
}

func (e *env) publish(id, target string) {
	e.t.Helper()
	if _, err := e.node.NodePublishVolume(ctx(e.t), &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: target, VolumeCapability: mountCap}); err != nil {
		e.t.Fatalf("NodePublishVolume %s: %v", id, err)
	}
}

func (e *env) unpublish(id, target string) {
	e.t.Helper()
	if _, err := e.node.NodeUnpublishVolume(ctx(e.t), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		e.t.Fatalf("NodeUnpublishVolume %s: %v", id, err)
	}
}

func (e *env) controllerExpand(id string, bytes int64) (*csi.ControllerExpandVolumeResponse, error) {
	return e.controller.ControllerExpandVolume(ctx(e.t), &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}})
}

func (e *env) nodeExpand(id, path string, bytes int64) (*csi.NodeExpandVolumeResponse, error) {
	return e.node.NodeExpandVolume(ctx(e.t), &csi.NodeExpandVolumeRequest{VolumeId: id, VolumePath: path, CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}, VolumeCapability: mountCap})
}

// setFaults writes faults.json the way tests should: a temporary file renamed over it.
func (e *env) setFaults(faults ...Fault) {
	e.t.Helper()
	if err := writeJSONAtomic(filepath.Join(e.state, "faults.json"), FaultFile{Faults: faults}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) hits() map[string]int {
	hits := map[string]int{}
	if data, err := os.ReadFile(filepath.Join(e.state, "faults-hits.json")); err == nil {
		_ = json.Unmarshal(data, &hits)
	}
	return hits
}

func statfsTotal(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(st.Blocks) * st.Bsize
}

func wantCode(t *testing.T, err error, code codes.Code, contains string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code || !strings.Contains(st.Message(), contains) {
		t.Fatalf("want %v containing %q, got %v", code, contains, err)
	}
}

func TestIdentityAndCapabilities(t *testing.T) {
	e := start(t, "node-1")
	info, err := e.identity.GetPluginInfo(ctx(t), &csi.GetPluginInfoRequest{})
	if err != nil || info.GetName() != DefaultName {
		t.Fatalf("GetPluginInfo: %v %v", info, err)
	}
	caps, err := e.identity.GetPluginCapabilities(ctx(t), &csi.GetPluginCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var online, controller bool
	for _, c := range caps.GetCapabilities() {
		online = online || c.GetVolumeExpansion().GetType() == csi.PluginCapability_VolumeExpansion_ONLINE
		controller = controller || c.GetService().GetType() == csi.PluginCapability_Service_CONTROLLER_SERVICE
	}
	if !online || !controller {
		t.Fatalf("plugin capabilities: %v", caps)
	}
	nodeCaps, err := e.node.NodeGetCapabilities(ctx(t), &csi.NodeGetCapabilitiesRequest{})
	if err != nil || len(nodeCaps.GetCapabilities()) != 2 {
		t.Fatalf("NodeGetCapabilities: %v %v", nodeCaps, err)
	}
	nodeInfo, err := e.node.NodeGetInfo(ctx(t), &csi.NodeGetInfoRequest{})
	if err != nil || nodeInfo.GetNodeId() != "node-1" {
		t.Fatalf("NodeGetInfo: %v %v", nodeInfo, err)
	}
}

// TestRegistration plays kubelet's plugin watcher: GetInfo on <kubelet root>/plugins_registry/<name>-reg.sock.
func TestRegistration(t *testing.T) {
	e := start(t, "node-1")
	sock := filepath.Join(e.kubelet, "plugins_registry", DefaultName+"-reg.sock")
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := registerapi.NewRegistrationClient(conn)
	info, err := client.GetInfo(ctx(t), &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != DefaultName || info.Endpoint != filepath.Join(e.kubelet, "plugins", DefaultName, "csi.sock") || len(info.SupportedVersions) != 1 || info.SupportedVersions[0] != "1.0.0" {
		t.Fatalf("GetInfo: %+v", info)
	}
	if _, err := client.NotifyRegistrationStatus(ctx(t), &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
}

// TestLifecycle: create, publish into a "pod", write, expand online with the filesystem visibly growing, unpublish,
// delete; every mount gone.
func TestLifecycle(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("data", 20*MiB, nil)
	if vol.GetCapacityBytes() != 20*MiB || vol.GetVolumeId() != "pv-data" {
		t.Fatalf("created %v", vol)
	}
	target := e.target("pod-1", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	e.publish(vol.GetVolumeId(), target) // idempotent
	if got, want := statfsTotal(t, target), FilesystemBytes(20*MiB, 0.03); got != want {
		t.Fatalf("filesystem of a 20Mi disk: %d bytes, want %d", got, want)
	}
	if err := os.WriteFile(filepath.Join(target, "data"), make([]byte, 4*MiB), 0o644); err != nil {
		t.Fatal(err)
	}
	stats, err := e.node.NodeGetVolumeStats(ctx(t), &csi.NodeGetVolumeStatsRequest{VolumeId: vol.GetVolumeId(), VolumePath: target})
	if err != nil {
		t.Fatal(err)
	}
	if b := stats.GetUsage()[0]; b.GetUnit() != csi.VolumeUsage_BYTES || b.GetUsed() != 4*MiB || b.GetTotal() != FilesystemBytes(20*MiB, 0.03) || b.GetAvailable() != b.GetTotal()-4*MiB {
		t.Fatalf("stats: %v", stats)
	}

	resp, err := e.controllerExpand(vol.GetVolumeId(), 30*MiB+1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCapacityBytes() != 31*MiB || !resp.GetNodeExpansionRequired() {
		t.Fatalf("ControllerExpandVolume: %v", resp)
	}
	// The disk grew; the filesystem waits for NodeExpandVolume, as on a real disk.
	if got := statfsTotal(t, target); got != FilesystemBytes(20*MiB, 0.03) {
		t.Fatalf("filesystem grew before NodeExpandVolume: %d", got)
	}
	if _, err := e.nodeExpand(vol.GetVolumeId(), target, 31*MiB); err != nil {
		t.Fatal(err)
	}
	if got, want := statfsTotal(t, target), FilesystemBytes(31*MiB, 0.03); got != want {
		t.Fatalf("after NodeExpandVolume: %d bytes, want %d", got, want)
	}
	if data, err := os.ReadFile(filepath.Join(target, "data")); err != nil || len(data) != 4*int(MiB) {
		t.Fatalf("data after the expansion: %d bytes, %v", len(data), err)
	}
	// A second publication (another pod) sees the same, larger filesystem and the same data.
	target2 := e.target("pod-2", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target2)
	if got := statfsTotal(t, target2); got != FilesystemBytes(31*MiB, 0.03) {
		t.Fatalf("second publication: %d", got)
	}
	// Expanding to the current size again is a no-op.
	if resp, err := e.controllerExpand(vol.GetVolumeId(), 25*MiB); err != nil || resp.GetCapacityBytes() != 31*MiB || resp.GetNodeExpansionRequired() {
		t.Fatalf("no-op expansion: %v %v", resp, err)
	}

	_, err = e.controller.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition, "still published")
	e.unpublish(vol.GetVolumeId(), target)
	e.unpublish(vol.GetVolumeId(), target2)
	e.unpublish(vol.GetVolumeId(), target2) // idempotent
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("target left behind: %v", err)
	}
	if _, err := e.controller.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.controller.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Fatalf("second DeleteVolume: %v", err)
	}
	mounts, _ := Mounts()
	for _, m := range mounts {
		if strings.HasPrefix(m.MountPoint, e.dir) {
			t.Fatalf("still mounted after delete: %s", m.MountPoint)
		}
	}
}

func TestRounding(t *testing.T) {
	cases := []struct {
		params map[string]string
		bytes  int64
		want   int64
	}{
		{nil, 1, MiB},
		{nil, 64 * MiB, 64 * MiB},
		{nil, 64*MiB + 1, 65 * MiB},
		{map[string]string{ParamTiers: "premium"}, 1, 4 * MiB},
		{map[string]string{ParamTiers: "premium"}, 5 * MiB, 8 * MiB},
		{map[string]string{ParamTiers: "premium"}, 100 * MiB, 128 * MiB},
		{map[string]string{ParamTiers: "premium"}, 513 * MiB, 1024 * MiB},
		{map[string]string{ParamTiers: "premium"}, 32767*MiB + 1, 32768 * MiB},
		{map[string]string{ParamGranularity: "1Gi"}, 1, GiB},
		{map[string]string{ParamGranularity: "1Gi", ParamTiers: "premium"}, 5 * GiB, 8 * GiB},
	}
	for _, c := range cases {
		cls, err := parseClass(c.params)
		if err != nil {
			t.Fatal(err)
		}
		if got := cls.rounding.Round(c.bytes); got != c.want {
			t.Errorf("%v: %d -> %s, want %s", c.params, c.bytes, FormatSize(got), FormatSize(c.want))
		}
	}
	if _, err := parseClass(map[string]string{ParamTiers: "gold", ParamGranularity: "x", "foo": "1"}); err == nil ||
		!strings.Contains(err.Error(), `tiers: "gold"`) || !strings.Contains(err.Error(), `granularity: invalid size "x"`) || !strings.Contains(err.Error(), `unknown parameter "foo"`) {
		t.Fatalf("validation: %v", err)
	}

	e := start(t, "node-1")
	vol := e.create("premium", 5*MiB, map[string]string{ParamTiers: "premium"})
	if vol.GetCapacityBytes() != 8*MiB {
		t.Fatalf("premium 5Mi -> %d", vol.GetCapacityBytes())
	}
	if got := statfsTotal(t, e.driver.store.DiskPath(vol.GetVolumeId())); got != FilesystemBytes(8*MiB, 0.03) {
		t.Fatalf("tmpfs of an 8Mi disk: %d", got)
	}
	if resp, err := e.controllerExpand(vol.GetVolumeId(), 9*MiB); err != nil || resp.GetCapacityBytes() != 16*MiB {
		t.Fatalf("premium expansion 9Mi: %v %v", resp, err)
	}
	_, err := e.controller.CreateVolume(ctx(t), &csi.CreateVolumeRequest{Name: "too-big", CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * MiB},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: map[string]string{ParamMaxSize: "1Mi"}})
	wantCode(t, err, codes.OutOfRange, "exceeds the maximum 1Mi")
	small := e.create("small", MiB, map[string]string{ParamMaxSize: "2Mi"})
	_, err = e.controllerExpand(small.GetVolumeId(), 3*MiB)
	wantCode(t, err, codes.OutOfRange, "exceeds the maximum 2Mi")
}

func TestControllerFaults(t *testing.T) {
	e := start(t, "node-1")
	a := e.create("a", 10*MiB, nil)
	b := e.create("b", 10*MiB, nil)
	e.setFaults(
		Fault{ID: "inf", Kind: FaultControllerInfeasible, PVC: "ns/a"},
		Fault{ID: "flaky", Kind: FaultTransientControllerError, PVCRegexp: "^ns/b$", Times: 2},
	)
	_, err := e.controllerExpand(a.GetVolumeId(), 20*MiB)
	wantCode(t, err, codes.OutOfRange, "is not supported by disk pv-a")
	_, err = e.controllerExpand(a.GetVolumeId(), 20*MiB)
	wantCode(t, err, codes.OutOfRange, "")
	for i := 0; i < 2; i++ {
		_, err = e.controllerExpand(b.GetVolumeId(), 20*MiB)
		wantCode(t, err, codes.Internal, "temporarily unavailable")
	}
	if resp, err := e.controllerExpand(b.GetVolumeId(), 20*MiB); err != nil || resp.GetCapacityBytes() != 20*MiB {
		t.Fatalf("after the transient errors: %v %v", resp, err)
	}
	if h := e.hits(); h["inf"] != 2 || h["flaky"] != 2 {
		t.Fatalf("hits: %v", h)
	}
	// A custom code and message; removing the fault lets the expansion through.
	e.setFaults(Fault{ID: "custom", Kind: FaultControllerInfeasible, Volume: "pv-a", Code: "InvalidArgument", Message: "no way"})
	_, err = e.controllerExpand(a.GetVolumeId(), 20*MiB)
	wantCode(t, err, codes.InvalidArgument, "no way")
	e.setFaults()
	if _, err := e.controllerExpand(a.GetVolumeId(), 20*MiB); err != nil {
		t.Fatal(err)
	}
}

func TestStuck(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("s", 10*MiB, nil)
	e.setFaults(Fault{ID: "hold", Kind: FaultStuck, PVC: "ns/s"})
	// Held until the caller's deadline: DeadlineExceeded, not final for external-resizer.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.controller.ControllerExpandVolume(short, &csi.ControllerExpandVolumeRequest{VolumeId: vol.GetVolumeId(), CapacityRange: &csi.CapacityRange{RequiredBytes: 20 * MiB}})
	wantCode(t, err, codes.DeadlineExceeded, "")
	// Held, then released by removing the fault: the call completes.
	done := make(chan error, 1)
	go func() {
		_, err := e.controllerExpand(vol.GetVolumeId(), 20*MiB)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("returned while held: %v", err)
	case <-time.After(400 * time.Millisecond):
	}
	e.setFaults()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still held after the fault was removed")
	}
	v, _ := e.driver.store.Get(vol.GetVolumeId())
	if v.CapacityBytes != 20*MiB {
		t.Fatalf("capacity %d", v.CapacityBytes)
	}
	// times: 1 holds one call only.
	e.setFaults(Fault{ID: "once", Kind: FaultStuckNode, Times: 1})
	target := e.target("pod", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	short2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	_, err = e.node.NodeExpandVolume(short2, &csi.NodeExpandVolumeRequest{VolumeId: vol.GetVolumeId(), VolumePath: target, CapacityRange: &csi.CapacityRange{RequiredBytes: 20 * MiB}})
	wantCode(t, err, codes.DeadlineExceeded, "")
	if _, err := e.nodeExpand(vol.GetVolumeId(), target, 20*MiB); err != nil {
		t.Fatal(err)
	}
	if got := statfsTotal(t, target); got != FilesystemBytes(20*MiB, 0.03) {
		t.Fatalf("filesystem %d", got)
	}
	e.unpublish(vol.GetVolumeId(), target)
}

func TestNodeFaults(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("n", 10*MiB, nil)
	target := e.target("pod", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	if _, err := e.controllerExpand(vol.GetVolumeId(), 20*MiB); err != nil {
		t.Fatal(err)
	}
	e.setFaults(Fault{ID: "inf", Kind: FaultNodeInfeasible, PVC: "ns/n", Times: 1}, Fault{ID: "flaky", Kind: FaultTransientNodeError})
	_, err := e.nodeExpand(vol.GetVolumeId(), target, 20*MiB)
	wantCode(t, err, codes.InvalidArgument, "resize2fs")
	_, err = e.nodeExpand(vol.GetVolumeId(), target, 20*MiB)
	wantCode(t, err, codes.Internal, "exit status 1")
	if got := statfsTotal(t, target); got != FilesystemBytes(10*MiB, 0.03) {
		t.Fatalf("filesystem grew despite the faults: %d", got)
	}
	if _, err := e.nodeExpand(vol.GetVolumeId(), target, 20*MiB); err != nil {
		t.Fatal(err)
	}
	if got := statfsTotal(t, target); got != FilesystemBytes(20*MiB, 0.03) {
		t.Fatalf("filesystem %d", got)
	}
	// NodeExpandVolume beyond the disk (no ControllerExpandVolume yet) is refused.
	_, err = e.nodeExpand(vol.GetVolumeId(), target, 40*MiB)
	wantCode(t, err, codes.Internal, "ControllerExpandVolume has not run")
	e.unpublish(vol.GetVolumeId(), target)
}

func TestGrowthBoundary(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("g", 10*MiB, map[string]string{ParamGrowthBoundary: "16Mi"})
	other := e.create("h", 10*MiB, nil)
	target := e.target("pod", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	// Up to the boundary is fine while published; past it is not.
	if _, err := e.controllerExpand(vol.GetVolumeId(), 16*MiB); err != nil {
		t.Fatal(err)
	}
	_, err := e.controllerExpand(vol.GetVolumeId(), 17*MiB)
	wantCode(t, err, codes.FailedPrecondition, "can only be resized past 16Mi when detached")
	// Unpublished ("detached"), it grows.
	e.unpublish(vol.GetVolumeId(), target)
	if _, err := e.controllerExpand(vol.GetVolumeId(), 17*MiB); err != nil {
		t.Fatal(err)
	}
	// Above the boundary already: no longer limited.
	e.publish(vol.GetVolumeId(), target)
	if _, err := e.controllerExpand(vol.GetVolumeId(), 40*MiB); err != nil {
		t.Fatal(err)
	}
	e.unpublish(vol.GetVolumeId(), target)

	// The same through the fault file, for one claim.
	t2 := e.target("pod2", other.GetVolumeId())
	e.publish(other.GetVolumeId(), t2)
	e.setFaults(Fault{Kind: FaultGrowthBoundary, PVC: "ns/h", Size: "12Mi"})
	_, err = e.controllerExpand(other.GetVolumeId(), 13*MiB)
	wantCode(t, err, codes.FailedPrecondition, "OperationNotAllowed")
	e.setFaults()
	if _, err := e.controllerExpand(other.GetVolumeId(), 13*MiB); err != nil {
		t.Fatal(err)
	}
	e.unpublish(other.GetVolumeId(), t2)
}

// TestRestart: a new driver process on the same state dir knows the volumes; one whose tmpfs vanished is mounted again.
func TestRestart(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("r", 10*MiB, nil)
	if _, err := e.controllerExpand(vol.GetVolumeId(), 12*MiB); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(e.driver.store.DiskPath(vol.GetVolumeId())); err != nil {
		t.Fatal(err)
	}
	e.startDriver("node-1")
	if got := statfsTotal(t, e.driver.store.DiskPath(vol.GetVolumeId())); got != FilesystemBytes(10*MiB, 0.03) {
		t.Fatalf("remounted tmpfs: %d", got)
	}
	target := e.target("pod", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	if _, err := e.nodeExpand(vol.GetVolumeId(), target, 12*MiB); err != nil {
		t.Fatal(err)
	}
	if got := statfsTotal(t, target); got != FilesystemBytes(12*MiB, 0.03) {
		t.Fatalf("after restart and expansion: %d", got)
	}
	e.unpublish(vol.GetVolumeId(), target)
}

// TestCleanup: Cleanup removes publications and disks even when nothing was unpublished.
func TestCleanup(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("c", 10*MiB, nil)
	target := e.target("pod", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	if err := Cleanup(e.state, false, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	mounts, _ := Mounts()
	for _, m := range mounts {
		if strings.HasPrefix(m.MountPoint, e.dir) {
			t.Fatalf("still mounted: %s", m.MountPoint)
		}
	}
}

func TestSizes(t *testing.T) {
	for text, want := range map[string]int64{"64Mi": 64 * MiB, "1Gi": GiB, "4Ti": 4 * TiB, "123": 123, "1.5Mi": 3 * MiB / 2, "1k": 1000} {
		if got, err := ParseSize(text); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1Mi", "1Xi"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for bytes, want := range map[int64]string{64 * MiB: "64Mi", GiB: "1Gi", 4097 * KiB: "4097Ki", 123: "123"} {
		if got := FormatSize(bytes); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", bytes, got, want)
		}
	}
	if got := FilesystemBytes(64*MiB, 0.03); got != 65093632 {
		t.Errorf("FilesystemBytes(64Mi) = %d", got)
	}
	if got := FilesystemBytes(1, 0.03); got != 4096 {
		t.Errorf("FilesystemBytes(1) = %d", got)
	}
}

// TestInvalidFaultFile: a broken faults.json fails expansions loudly instead of being ignored.
func TestInvalidFaultFile(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("x", 10*MiB, nil)
	if err := os.WriteFile(filepath.Join(e.state, "faults.json"), []byte(`{"faults":[{"kind":"explode"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.controllerExpand(vol.GetVolumeId(), 20*MiB)
	wantCode(t, err, codes.Internal, `unknown kind "explode"`)
}

// TestTwoNodes: two driver processes (nodes) sharing one state dir: a volume created through one is published and
// expanded on the other, and counts as published for both.
func TestTwoNodes(t *testing.T) {
	a := start(t, "node-a")
	b := &env{t: t, dir: a.dir, state: a.state, kubelet: filepath.Join(a.dir, "kubelet-b"), logs: &logBuffer{}}
	b.startDriver("node-b")
	if info, err := b.node.NodeGetInfo(ctx(t), &csi.NodeGetInfoRequest{}); err != nil || info.GetNodeId() != "node-b" {
		t.Fatalf("NodeGetInfo on b: %v %v", info, err)
	}
	vol := a.create("shared", 10*MiB, map[string]string{ParamGrowthBoundary: "10Mi"})
	target := b.target("pod", vol.GetVolumeId())
	b.publish(vol.GetVolumeId(), target)
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(a.driver.store.DiskPath(vol.GetVolumeId()), "f")); err != nil {
		t.Fatalf("the write on node b is not on the disk: %v", err)
	}
	// Published on b: the controller (on a) sees it attached.
	_, err := a.controllerExpand(vol.GetVolumeId(), 11*MiB)
	wantCode(t, err, codes.FailedPrecondition, "attached")
	b.unpublish(vol.GetVolumeId(), target)
	if _, err := a.controllerExpand(vol.GetVolumeId(), 11*MiB); err != nil {
		t.Fatal(err)
	}
	b.publish(vol.GetVolumeId(), target)
	if _, err := b.nodeExpand(vol.GetVolumeId(), target, 11*MiB); err != nil {
		t.Fatal(err)
	}
	if got := statfsTotal(t, target); got != FilesystemBytes(11*MiB, 0.03) {
		t.Fatalf("filesystem on b: %d", got)
	}
	b.unpublish(vol.GetVolumeId(), target)
}

// TestSlow: a stuck fault with a delay holds each call that long, then carries it out.
func TestSlow(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("slow", 10*MiB, nil)
	e.setFaults(Fault{ID: "slow", Kind: FaultStuck, Delay: "600ms"})
	begin := time.Now()
	if _, err := e.controllerExpand(vol.GetVolumeId(), 20*MiB); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 600*time.Millisecond || took > 3*time.Second {
		t.Fatalf("slow expansion took %s", took)
	}
	e.setFaults(Fault{ID: "bad", Kind: FaultStuckNode, Delay: "soon"})
	_, err := e.nodeExpand(vol.GetVolumeId(), e.driver.store.DiskPath(vol.GetVolumeId()), 20*MiB)
	wantCode(t, err, codes.Internal, `delay "soon" is not a duration`)
}

// TestStalePublication: a publication unmounted behind the driver's back neither blocks deletion nor counts as attached.
func TestStalePublication(t *testing.T) {
	e := start(t, "node-1")
	vol := e.create("stale", 10*MiB, map[string]string{ParamGrowthBoundary: "10Mi"})
	target := e.target("pod", vol.GetVolumeId())
	e.publish(vol.GetVolumeId(), target)
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if _, err := e.controllerExpand(vol.GetVolumeId(), 11*MiB); err != nil {
		t.Fatalf("expansion past the boundary of a volume no longer mounted: %v", err)
	}
	if _, err := e.controller.DeleteVolume(ctx(t), &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
}
