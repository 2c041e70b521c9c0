package driver

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
	TiB int64 = 1 << 40
)

// premiumTiers are Azure Premium SSD v1 sizes (P1 .. P80) in units of the class's granularity: 4 GiB .. 32 TiB on Azure,
// 4 MiB .. 32 GiB at MiB scale. Above the last tier sizes round to the granularity.
var premiumTiers = []int64{4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767}

// ParseSize reads a byte count: a plain integer or a Kubernetes binary quantity (Ki, Mi, Gi, Ti; also k, M, G, T).
func ParseSize(text string) (int64, error) {
	s := strings.TrimSpace(text)
	units := []struct {
		suffix string
		factor int64
	}{{"Ki", KiB}, {"Mi", MiB}, {"Gi", GiB}, {"Ti", TiB}, {"k", 1000}, {"M", 1000 * 1000}, {"G", 1000 * 1000 * 1000}, {"T", 1000 * 1000 * 1000 * 1000}}
	factor := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			factor = u.factor
			s = strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("invalid size %q", text)
	}
	return int64(math.Ceil(n * float64(factor))), nil
}

// FormatSize prints bytes as the largest exact binary quantity (Kubernetes style: 64Mi, 1Gi, 4097Ki, 123).
func FormatSize(bytes int64) string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"Ti", TiB}, {"Gi", GiB}, {"Mi", MiB}, {"Ki", KiB}} {
		if bytes != 0 && bytes%u.factor == 0 {
			return strconv.FormatInt(bytes/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(bytes, 10)
}

// Rounding is how a class rounds a requested size to the size of the disk it provisions.
type Rounding struct {
	// Granularity: sizes round up to a multiple of this (Azure: 1 GiB; the MiB-scale classes: 1 MiB).
	Granularity int64
	// Tiers: Premium SSD v1 tiers (4, 8, 16, ... units of Granularity).
	Tiers bool
}

// Round returns the disk size for a request of `bytes` (at least one granularity unit, or the smallest tier).
func (r Rounding) Round(bytes int64) int64 {
	g := r.Granularity
	if g <= 0 {
		g = MiB
	}
	if bytes < g {
		bytes = g
	}
	units := (bytes + g - 1) / g
	if r.Tiers {
		for _, t := range premiumTiers {
			if units <= t {
				return t * g
			}
		}
	}
	return units * g
}

func (r Rounding) String() string {
	if r.Tiers {
		return "premium tiers of " + FormatSize(r.Granularity)
	}
	return FormatSize(r.Granularity)
}

// FilesystemBytes is the size of the filesystem on a disk of diskBytes: smaller by the overhead (ext4 metadata and
// journal take ~3%), a whole number of 4 KiB pages, at least one page.
func FilesystemBytes(diskBytes int64, overhead float64) int64 {
	fs := int64(math.Floor(float64(diskBytes)*(1-overhead))) / 4096 * 4096
	if fs < 4096 {
		fs = 4096
	}
	return fs
}
