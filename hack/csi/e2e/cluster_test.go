// Package e2e runs the driver with the real external-provisioner and external-resizer against a real kube-apiserver,
// etcd and kube-controller-manager (no kubelet: node expansion is kubelet's and is tested on the real node).
package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"crypto/tls"
)

// cluster is a control plane and the CSI processes, all children of the test, stopped and cleaned up by t.Cleanup.
type cluster struct {
	t          *testing.T
	dir        string
	cpBin      string
	csiBin     string
	kubeconfig string
	state      string
	// launchState is launch.sh's --state; launchLogs keeps its logs for a failed test's report.
	launchState string
	launchLogs  map[string]string
	kubeletRoot string
}

// repoCSI is hack/csi (the tests run in hack/csi/e2e).
func (c *cluster) repoCSI() string {
	wd, err := os.Getwd()
	if err != nil {
		c.t.Fatal(err)
	}
	return filepath.Dir(wd)
}

func binDirs(t *testing.T) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the driver mounts tmpfs")
	}
	cp, csi := os.Getenv("CONTROLPLANE_BIN"), os.Getenv("CSI_BIN")
	if cp == "" || csi == "" {
		t.Skip("set CONTROLPLANE_BIN (hack/controlplane/build.sh) and CSI_BIN (hack/csi/build.sh); hack/csi/test.sh does")
	}
	return cp, csi
}

func startCluster(t *testing.T) *cluster {
	cpBin, csiBin := binDirs(t)
	c := &cluster{t: t, dir: t.TempDir(), cpBin: cpBin, csiBin: csiBin, launchLogs: map[string]string{}}
	pki := c.makePKI()
	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL, peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort), fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	c.start("etcd", filepath.Join(cpBin, "etcd"), "--name=default", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL, "--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL, "--initial-cluster=default="+peerURL, "--unsafe-no-fsync", "--log-level=warn")
	c.waitFor("etcd", 30*time.Second, func() bool {
		resp, err := http.Get(etcdURL + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.start("kube-apiserver", filepath.Join(cpBin, "kube-apiserver"), "--etcd-servers="+etcdURL,
		"--cert-dir="+filepath.Join(c.dir, "pki"), "--tls-cert-file="+pki["apiserver.crt"], "--tls-private-key-file="+pki["apiserver.key"],
		fmt.Sprintf("--secure-port=%d", apiPort), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC", "--client-ca-file="+pki["ca.crt"],
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local", "--service-account-key-file="+pki["sa.pub"],
		"--service-account-signing-key-file="+pki["sa.key"], "--enable-priority-and-fairness=false", "--v=1")
	c.kubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	b64 := func(name string) string {
		data, _ := os.ReadFile(pki[name])
		return base64.StdEncoding.EncodeToString(data)
	}
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\ncurrent-context: local\nclusters:\n- name: local\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n"+
		"users:\n- name: admin\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\ncontexts:\n- name: local\n  context:\n    cluster: local\n    user: admin\n",
		server, b64("ca.crt"), b64("admin.crt"), b64("admin.key"))
	if err := os.WriteFile(c.kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(pki["admin.crt"], pki["admin.key"])
	if err != nil {
		t.Fatal(err)
	}
	caPool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(pki["ca.crt"])
	caPool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: caPool}}}
	c.waitFor("kube-apiserver", 120*time.Second, func() bool {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	c.start("kube-controller-manager", filepath.Join(cpBin, "kube-controller-manager"), "--kubeconfig="+c.kubeconfig,
		"--controllers=persistentvolume-binder-controller,persistentvolumeclaim-protection-controller,persistentvolume-protection-controller",
		"--leader-elect=false", "--secure-port=0", "--v=1")

	// The driver and the sidecars exactly as the stack starts them (hack/csi/launch.sh), with a kubelet root of our own
	// (no kubelet watches its registration socket here).
	launch := filepath.Join(c.repoCSI(), "launch.sh")
	// A short kubelet root: unix socket paths are limited to 107 bytes.
	kubeletRoot, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(kubeletRoot) })
	c.kubeletRoot = kubeletRoot
	// Cleanups run last-registered first: logs are kept, then launch.sh stop, then the kubelet root goes.
	c.launchState = filepath.Join(c.dir, "csi-launch")
	c.state = filepath.Join(c.launchState, "volumes")
	t.Cleanup(func() {
		out, err := exec.Command(launch, "stop", "--state", c.launchState).CombinedOutput()
		if err != nil {
			t.Errorf("launch.sh stop: %v\n%s", err, out)
		}
		c.checkNoMounts()
		if t.Failed() {
			for _, name := range []string{"csi-tmpfs", "csi-provisioner", "csi-resizer"} {
				t.Logf("--- %s log (tail) ---\n%s", name, c.launchLogs[name])
			}
		}
	})
	t.Cleanup(func() {
		// Runs before launch.sh stop: keep the logs of a failed run.
		for _, name := range []string{"csi-tmpfs", "csi-provisioner", "csi-resizer"} {
			data, _ := os.ReadFile(filepath.Join(c.launchState, "logs", name+".log"))
			if len(data) > 6000 {
				data = data[len(data)-6000:]
			}
			c.launchLogs[name] = string(data)
		}
	})
	cmd := exec.Command(launch, "start", "--kubeconfig", c.kubeconfig, "--kubelet-root", kubeletRoot,
		"--state", c.launchState, "--bin", csiBin, "--node-id", "node-1")
	cmd.Env = append(os.Environ(), "KUBECTL="+filepath.Join(cpBin, "kubectl"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("launch.sh start: %v\n%s", err, out)
	}
	return c
}

// start runs a child process in its own process group, logging to <dir>/<name>.log; t.Cleanup kills the group.
func (c *cluster) start(name, bin string, args ...string) {
	c.t.Helper()
	logFile, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
		if c.t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			if len(data) > 6000 {
				data = data[len(data)-6000:]
			}
			c.t.Logf("--- %s log (tail) ---\n%s", name, data)
		}
	})
}

// checkNoMounts fails the test if anything is still mounted under its directory (and unmounts it).
func (c *cluster) checkNoMounts() {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], c.dir+"/") {
			c.t.Errorf("left mounted: %s", fields[4])
			_ = syscall.Unmount(fields[4], syscall.MNT_DETACH)
		}
	}
}

func (c *cluster) waitFor(what string, timeout time.Duration, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kubectl runs kubectl against the cluster; stdin is optional.
func (c *cluster) kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.cpBin, "kubectl"), append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func (c *cluster) mustKubectl(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(stdin, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// eventually polls a jsonpath of an object until it equals want.
func (c *cluster) eventually(timeout time.Duration, want string, args ...string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var got string
	for time.Now().Before(deadline) {
		out, err := c.kubectl("", args...)
		got = strings.TrimSpace(out)
		if err == nil && got == want {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Fatalf("kubectl %s: %q, want %q after %s", strings.Join(args, " "), got, want, timeout)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// makePKI writes a CA, the API server's serving cert, an admin client cert (system:masters) and the service account
// key pair; returns file paths by name.
func (c *cluster) makePKI() map[string]string {
	t := c.t
	dir := filepath.Join(c.dir, "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	write := func(name, typ string, der []byte) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = path
	}
	newKey := func(name string) *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, _ := x509.MarshalECPrivateKey(key)
		write(name, "EC PRIVATE KEY", der)
		return key
	}
	caKey := newKey("ca.key")
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "csi-e2e-ca"}, NotBefore: now, NotAfter: now.Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.crt", "CERTIFICATE", caDER)
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(name string, serial int64, tmpl *x509.Certificate) {
		key := newKey(name + ".key")
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(serial), now, now.Add(48*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", "CERTIFICATE", der)
	}
	issue("apiserver", 2, &x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}, DNSNames: []string{"localhost", "kubernetes", "kubernetes.default"}})
	issue("admin", 3, &x509.Certificate{Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	saKey := newKey("sa.key")
	pub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	write("sa.pub", "PUBLIC KEY", pub)
	return files
}
