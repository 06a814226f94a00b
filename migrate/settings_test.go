package migrate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drover-hpc/drover/internal/config"
)

func ptr[T any](v T) *T { return &v }

func TestSettings(t *testing.T) {
	cfg := config.Migration{MaxDowntime: 50 * time.Millisecond, BandwidthMiBs: 100, Timeout: time.Minute, VerifyFor: 2 * time.Second}
	for _, tc := range []struct {
		name string
		cfg  config.Migration
		req  Request
		want config.Migration
		bad  string // substring of the error; "" when valid
	}{
		{name: "configuration as is", cfg: cfg, want: cfg},
		{
			name: "overrides win, zero included",
			cfg:  cfg,
			req:  Request{MaxDowntime: ptr(200 * time.Millisecond), BandwidthMiBs: ptr(0), AutoConverge: ptr(true)},
			want: config.Migration{MaxDowntime: 200 * time.Millisecond, AutoConverge: true, Timeout: time.Minute, VerifyFor: 2 * time.Second},
		},
		{
			// a configuration that leaves the timeout unset gets 10 min; verification 0 is the quick check
			name: "zero configuration gets defaults",
			want: config.Migration{Timeout: 10 * time.Minute},
		},
		{name: "negative downtime", cfg: cfg, req: Request{MaxDowntime: ptr(-time.Millisecond)}, bad: "max downtime -1ms is negative"},
		{name: "negative bandwidth", cfg: cfg, req: Request{BandwidthMiBs: ptr(-5)}, bad: "bandwidth -5 MiB/s"},
		{name: "zero timeout asked for", cfg: cfg, req: Request{Timeout: ptr(time.Duration(0))}, bad: "timeout 0s must be positive"},
		{name: "every problem at once", cfg: cfg, req: Request{VerifyFor: ptr(-time.Second), PostCopyAfter: ptr(-time.Second)},
			bad: "post-copy delay -1s is negative; verification time -1s is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := settings(tc.cfg, tc.req)
			if tc.bad != "" {
				if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v, want ErrBadRequest with %q", err, tc.bad)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("settings = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestCheckRequest(t *testing.T) {
	for _, tc := range []struct {
		req    Request
		reason string // journaled reason; "" when refused
		bad    string
	}{
		{Request{VNode: "vn1", To: "hv2"}, "manual", ""},
		{Request{VNode: "vn1", To: "hv2", Reason: "evacuation"}, "evacuation", ""},
		{Request{VNode: "vn1", To: "hv2", Reason: "whim"}, "", `reason "whim" is not one of`},
		{Request{VNode: "", To: "hv2"}, "", `vnode name "" is not a valid name`},
		{Request{VNode: "-x", To: "hv2"}, "", `vnode name "-x"`},
		{Request{VNode: "vn1'; DROP TABLE vnodes; --", To: "hv2"}, "", "is not a valid name"},
		{Request{VNode: "vn1"}, "", "no destination hypervisor given"},
	} {
		reason, err := checkRequest(tc.req)
		if tc.bad == "" {
			if err != nil || reason != tc.reason {
				t.Errorf("%+v: reason %q, err %v; want %q", tc.req, reason, err, tc.reason)
			}
			continue
		}
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("%+v: err = %v, want %q", tc.req, err, tc.bad)
		}
	}
}
