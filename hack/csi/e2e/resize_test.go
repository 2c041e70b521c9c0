package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"cnpg-dynamic-storage/hack/csi/driver"
)

const immediateClass = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: e2e-immediate-mib
provisioner: tmpfs.csi.test.cnpg.io
parameters:
  granularity: 1Mi
allowVolumeExpansion: true
reclaimPolicy: Delete
volumeBindingMode: Immediate
`

func pvc(name, class, size string, annotations map[string]string) string {
	obj := map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": name, "namespace": "default", "annotations": annotations},
		"spec": map[string]any{
			"accessModes": []string{"ReadWriteOnce"}, "storageClassName": class,
			"resources": map[string]any{"requests": map[string]string{"storage": size}},
		},
	}
	data, _ := json.Marshal(obj)
	return string(data)
}

func statfsTotal(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(st.Blocks) * st.Bsize
}

func setFaults(t *testing.T, state string, faults ...driver.Fault) {
	t.Helper()
	data, _ := json.Marshal(driver.FaultFile{Faults: faults})
	tmp := filepath.Join(state, "faults.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(state, "faults.json")); err != nil {
		t.Fatal(err)
	}
}

// TestProvisionAndResize: Kubernetes' own provisioning and controller expansion through the real sidecars.
func TestProvisionAndResize(t *testing.T) {
	c := startCluster(t)
	// launch.sh applied storageclasses.yaml.
	c.eventually(10*time.Second, "false", "get", "csidriver", "tmpfs.csi.test.cnpg.io", "-o", "jsonpath={.spec.attachRequired}")
	c.mustKubectl(immediateClass, "apply", "-f", "-")

	// Provisioning: bound, the PV carries the claim's size, the tmpfs exists 3% smaller.
	c.mustKubectl(pvc("data", "e2e-immediate-mib", "20Mi", nil), "apply", "-f", "-")
	c.eventually(60*time.Second, "Bound", "get", "pvc", "data", "-o", "jsonpath={.status.phase}")
	pv := strings.TrimSpace(c.mustKubectl("", "get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}"))
	c.eventually(5*time.Second, "20Mi", "get", "pv", pv, "-o", "jsonpath={.spec.capacity.storage}")
	disk := filepath.Join(c.state, "disks", pv)
	if got, want := statfsTotal(t, disk), driver.FilesystemBytes(20<<20, 0.03); got != want {
		t.Fatalf("tmpfs of %s: %d bytes, want %d", pv, got, want)
	}
	rec, err := (&driver.Store{Dir: c.state}).Get(pv)
	if err != nil || rec.PVC() != "default/data" || rec.PVName != pv {
		t.Fatalf("volume record (--extra-create-metadata): %+v %v", rec, err)
	}

	// Expansion: the resizer calls ControllerExpandVolume; without a kubelet the claim waits for the node.
	c.mustKubectl("", "patch", "pvc", "data", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"30Mi"}}}}`)
	c.eventually(60*time.Second, "30Mi", "get", "pv", pv, "-o", "jsonpath={.spec.capacity.storage}")
	c.eventually(30*time.Second, "NodeResizePending", "get", "pvc", "data", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")
	c.eventually(10*time.Second, "True", "get", "pvc", "data", "-o", `jsonpath={.status.conditions[?(@.type=="FileSystemResizePending")].status}`)
	c.eventually(5*time.Second, "20Mi", "get", "pvc", "data", "-o", "jsonpath={.status.capacity.storage}")

	// Premium tiers through a WaitForFirstConsumer class: the scheduler's annotation on a Node that exists.
	c.mustKubectl(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-1"}}`, "apply", "-f", "-")
	c.mustKubectl(pvc("tiered", "managed-csi-premium-tiers-mib", "5Mi", map[string]string{"volume.kubernetes.io/selected-node": "node-1"}), "apply", "-f", "-")
	c.eventually(60*time.Second, "Bound", "get", "pvc", "tiered", "-o", "jsonpath={.status.phase}")
	c.eventually(5*time.Second, "8Mi", "get", "pvc", "tiered", "-o", "jsonpath={.status.capacity.storage}")

	// Faults: an infeasible expansion, then a transient one.
	setFaults(t, c.state, driver.Fault{ID: "inf", Kind: driver.FaultControllerInfeasible, PVC: "default/tiered"})
	c.mustKubectl("", "patch", "pvc", "tiered", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"9Mi"}}}}`)
	c.eventually(60*time.Second, "ControllerResizeInfeasible", "get", "pvc", "tiered", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")
	msg := c.mustKubectl("", "get", "pvc", "tiered", "-o", `jsonpath={.status.conditions[?(@.type=="ControllerResizeError")].message}`)
	if !strings.Contains(msg, "OutOfRange") || !strings.Contains(msg, "is not supported by disk") {
		t.Fatalf("ControllerResizeError: %q", msg)
	}
	setFaults(t, c.state, driver.Fault{ID: "flaky", Kind: driver.FaultTransientControllerError, PVC: "default/tiered", Times: 2})
	// A new request restarts the expansion; two transient failures, then the disk grows to the next tier.
	c.mustKubectl("", "patch", "pvc", "tiered", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"10Mi"}}}}`)
	c.eventually(60*time.Second, "16Mi", "get", "pv", strings.TrimSpace(c.mustKubectl("", "get", "pvc", "tiered", "-o", "jsonpath={.spec.volumeName}")), "-o", "jsonpath={.spec.capacity.storage}")
	c.eventually(30*time.Second, "NodeResizePending", "get", "pvc", "tiered", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")
	hits, _ := os.ReadFile(filepath.Join(c.state, "faults-hits.json"))
	if !strings.Contains(string(hits), `"flaky": 2`) || !strings.Contains(string(hits), `"inf": `) {
		t.Fatalf("fault hits: %s", hits)
	}

	// A larger request while the node expansion is pending waits for kubelet (external-resizer's expandAndRecover).
	c.mustKubectl("", "patch", "pvc", "data", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"40Mi"}}}}`)
	time.Sleep(2 * time.Second)
	c.eventually(time.Second, "30Mi", "get", "pv", pv, "-o", "jsonpath={.spec.capacity.storage}")
	c.eventually(time.Second, "NodeResizePending", "get", "pvc", "data", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")

	// stuck: the claim holds at ControllerResizeInProgress until the fault is removed.
	c.mustKubectl(pvc("held", "e2e-immediate-mib", "10Mi", nil), "apply", "-f", "-")
	c.eventually(60*time.Second, "Bound", "get", "pvc", "held", "-o", "jsonpath={.status.phase}")
	held := strings.TrimSpace(c.mustKubectl("", "get", "pvc", "held", "-o", "jsonpath={.spec.volumeName}"))
	setFaults(t, c.state, driver.Fault{ID: "hold", Kind: driver.FaultStuck, PVC: "default/held"})
	c.mustKubectl("", "patch", "pvc", "held", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"20Mi"}}}}`)
	c.eventually(30*time.Second, "ControllerResizeInProgress", "get", "pvc", "held", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")
	time.Sleep(2 * time.Second)
	c.eventually(time.Second, "10Mi", "get", "pv", held, "-o", "jsonpath={.spec.capacity.storage}")
	setFaults(t, c.state)
	c.eventually(30*time.Second, "20Mi", "get", "pv", held, "-o", "jsonpath={.spec.capacity.storage}")
	c.eventually(30*time.Second, "NodeResizePending", "get", "pvc", "held", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")

	// The growth boundary: a published volume cannot grow past it; once unpublished it does.
	c.mustKubectl(pvc("bounded", "e2e-immediate-mib", "10Mi", nil), "apply", "-f", "-")
	c.eventually(60*time.Second, "Bound", "get", "pvc", "bounded", "-o", "jsonpath={.status.phase}")
	bounded := strings.TrimSpace(c.mustKubectl("", "get", "pvc", "bounded", "-o", "jsonpath={.spec.volumeName}"))
	node := c.csiClient()
	target := filepath.Join(c.kubeletRoot, "pods", "p1", "volumes", "kubernetes.io~csi", bounded, "mount")
	if _, err := node.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: bounded, TargetPath: target, VolumeCapability: mountCapability}); err != nil {
		t.Fatal(err)
	}
	setFaults(t, c.state, driver.Fault{Kind: driver.FaultGrowthBoundary, PVC: "default/bounded", Size: "12Mi"})
	c.mustKubectl("", "patch", "pvc", "bounded", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"20Mi"}}}}`)
	c.eventually(30*time.Second, "True", "get", "pvc", "bounded", "-o", `jsonpath={.status.conditions[?(@.type=="ControllerResizeError")].status}`)
	if msg := c.mustKubectl("", "get", "pvc", "bounded", "-o", `jsonpath={.status.conditions[?(@.type=="ControllerResizeError")].message}`); !strings.Contains(msg, "OperationNotAllowed") {
		t.Fatalf("ControllerResizeError: %q", msg)
	}
	c.eventually(5*time.Second, "ControllerResizeInProgress", "get", "pvc", "bounded", "-o", "jsonpath={.status.allocatedResourceStatuses.storage}")
	if _, err := node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: bounded, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	c.eventually(30*time.Second, "20Mi", "get", "pv", bounded, "-o", "jsonpath={.spec.capacity.storage}")
	setFaults(t, c.state)

	// A class without expansion: the API server refuses the patch.
	c.mustKubectl(pvc("fixed", "managed-csi-fixed-mib", "4Mi", map[string]string{"volume.kubernetes.io/selected-node": "node-1"}), "apply", "-f", "-")
	c.eventually(60*time.Second, "Bound", "get", "pvc", "fixed", "-o", "jsonpath={.status.phase}")
	if _, err := c.kubectl("", "patch", "pvc", "fixed", "--type=merge", "-p", `{"spec":{"resources":{"requests":{"storage":"5Mi"}}}}`); err == nil || !strings.Contains(err.Error(), "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize") {
		t.Fatalf("patch of a fixed-size claim: %v", err)
	}

	// Deletion: reclaim policy Delete removes the PV and the tmpfs.
	c.mustKubectl("", "delete", "pvc", "data", "tiered", "fixed", "bounded", "held", "--wait=false")
	c.eventually(60*time.Second, "", "get", "pv", "-o", "jsonpath={.items[*].metadata.name}")
	if _, err := os.Stat(disk); !os.IsNotExist(err) {
		t.Fatalf("disk of %s still there: %v", pv, err)
	}
}

var mountCapability = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// csiClient plays kubelet on the driver's socket.
func (c *cluster) csiClient() csi.NodeClient {
	conn, err := grpc.NewClient("unix://"+filepath.Join(c.kubeletRoot, "plugins", driver.DefaultName, "csi.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = conn.Close() })
	return csi.NewNodeClient(conn)
}
