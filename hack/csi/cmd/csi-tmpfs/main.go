// csi-tmpfs is a CSI driver for tests: tmpfs volumes with a size, grown online. See hack/csi/README.md.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"cnpg-dynamic-storage/hack/csi/driver"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) > 1 && os.Args[1] == "cleanup" {
		os.Exit(cleanup(os.Args[2:]))
	}
	os.Exit(serve(os.Args[1:]))
}

func serve(args []string) int {
	fs := flag.NewFlagSet("csi-tmpfs", flag.ExitOnError)
	name := fs.String("driver-name", driver.DefaultName, "driver name (the CSIDriver object's name)")
	nodeID := fs.String("node-id", "", "node id reported by NodeGetInfo: the Node object's name (required)")
	kubeletDir := fs.String("kubelet-dir", "/var/lib/kubelet", "kubelet's root dir: defaults the two socket paths below")
	endpoint := fs.String("endpoint", "", "CSI socket path (default <kubelet-dir>/plugins/<driver-name>/csi.sock)")
	regDir := fs.String("kubelet-registration-dir", "", "kubelet's plugin registration dir (default <kubelet-dir>/plugins_registry; \"-\" disables registration)")
	stateDir := fs.String("state-dir", "/var/lib/csi-tmpfs", "volume records, tmpfs mount points and fault files; share it between the driver processes of all nodes")
	overhead := fs.Float64("filesystem-overhead", 0.03, "the filesystem is this fraction smaller than the disk (ext4's metadata and journal)")
	version := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(args)
	if *version {
		fmt.Println(driver.Version)
		return 0
	}
	if *endpoint == "" {
		*endpoint = filepath.Join(*kubeletDir, "plugins", *name, "csi.sock")
	}
	switch *regDir {
	case "":
		*regDir = filepath.Join(*kubeletDir, "plugins_registry")
	case "-":
		*regDir = ""
	}
	d, err := driver.New(driver.Config{Name: *name, NodeID: *nodeID, Endpoint: *endpoint, RegistrationDir: *regDir, StateDir: *stateDir, FilesystemOverhead: *overhead})
	if err != nil {
		log.Printf("csi-tmpfs: %v", err)
		return 2
	}
	srv, err := d.Start()
	if err != nil {
		log.Printf("csi-tmpfs: %v", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Printf("csi-tmpfs: %v, stopping (volumes stay mounted; `csi-tmpfs cleanup` removes them)", s)
		srv.Stop()
		return 0
	case err := <-srv.Errors():
		log.Printf("csi-tmpfs: %v", err)
		srv.Stop()
		return 1
	}
}

// cleanup unmounts every publication and disk recorded in the state dir and every other tmpfs of this driver, then
// (with --remove) deletes the state dir.
func cleanup(args []string) int {
	fs := flag.NewFlagSet("csi-tmpfs cleanup", flag.ExitOnError)
	stateDir := fs.String("state-dir", "/var/lib/csi-tmpfs", "the driver's state dir")
	remove := fs.Bool("remove", false, "delete the state dir afterwards")
	_ = fs.Parse(args)
	if err := driver.Cleanup(*stateDir, *remove, log.Printf); err != nil {
		log.Printf("csi-tmpfs cleanup: %v", err)
		return 1
	}
	return 0
}
