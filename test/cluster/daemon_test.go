//go:build cluster

package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The chart's DaemonSet of pisa-daemon for the release.
const daemonSet = release + "-daemon"

// daemonPod waits for the Ready pod of the daemon DaemonSet that is not `not` and not being
// deleted.
func (e *env) daemonPod(ctx context.Context, t *testing.T, not string) corev1.Pod {
	t.Helper()
	ds, err := e.cs.AppsV1().DaemonSets(namespace).Get(ctx, daemonSet, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e.readyPod(ctx, t, namespace, metav1.FormatLabelSelector(ds.Spec.Selector), not, "daemon")
}

// htbState is what tc shows on the device the daemon shapes: the root qdisc and the class of the
// catalogue's QoSClaim, with their byte counters. A qdisc or class created again starts from 0.
type htbState struct {
	root, class         string // their first lines
	classID             string // 1:<minor>
	rootSent, classSent uint64
}

var sentRE = regexp.MustCompile(`Sent ([0-9]+) bytes`)

// tcBlocks splits `tc -s ... show` output into one block per qdisc or class.
func tcBlocks(out string) []string {
	var blocks []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "qdisc "), strings.HasPrefix(l, "class "):
			blocks = append(blocks, l)
		case len(blocks) > 0 && strings.TrimSpace(l) != "":
			blocks[len(blocks)-1] += "\n" + l
		}
	}
	return blocks
}

func sent(block string) uint64 {
	m := sentRE.FindStringSubmatch(block)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// htb reads the root HTB qdisc 1: and the class at the claimed rate; it fails the test when
// either is missing.
func (e *env) htb(t *testing.T) htbState {
	t.Helper()
	var s htbState
	q, err := exec.Command("tc", "-s", "qdisc", "show", "dev", e.extDev).CombinedOutput()
	if err != nil {
		t.Fatalf("tc -s qdisc show dev %s: %v\n%s", e.extDev, err, q)
	}
	for _, b := range tcBlocks(string(q)) {
		if strings.HasPrefix(b, "qdisc htb 1: root") {
			s.root, s.rootSent = strings.SplitN(b, "\n", 2)[0], sent(b)
		}
	}
	c, err := exec.Command("tc", "-s", "class", "show", "dev", e.extDev).CombinedOutput()
	if err != nil {
		t.Fatalf("tc -s class show dev %s: %v\n%s", e.extDev, err, c)
	}
	want := fmt.Sprintf(" rate %dMbit ", claimMbit)
	for _, b := range tcBlocks(string(c)) {
		first := strings.SplitN(b, "\n", 2)[0]
		if f := strings.Fields(first); len(f) > 2 && f[1] == "htb" && strings.Contains(first+" ", want) {
			s.class, s.classID, s.classSent = first, f[2], sent(b)
		}
	}
	if s.root == "" || s.class == "" {
		t.Fatalf("no root HTB qdisc 1: or no class at %d Mbit/s on %s:\n%s\n%s", claimMbit, e.extDev, q, c)
	}
	return s
}

// exitLines returns a daemon's log from "shutting down" on.
func exitLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `msg="shutting down"`) || len(out) > 0 && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// daemonKeptState checks, after helm upgrade replaced the daemon pod, that the rolling update
// did not touch the node's QoS state: the old daemon (--cleanup-on-exit=auto) saw its DaemonSet
// and left classes and classifier pinned; the root qdisc and the class are the same objects
// (their counters went on, where ones created again would start from 0), the class keeps the
// claimed rate; the new daemon adopted them without creating a root qdisc.
func (e *env) daemonKeptState(ctx context.Context, t *testing.T, oldPod string, oldLog *logStream, before htbState) {
	t.Helper()
	pod := e.daemonPod(ctx, t, oldPod)
	if img := pod.Spec.Containers[0].Image; !strings.HasSuffix(img, ":"+e.nextTag) {
		t.Errorf("the new daemon pod %s runs %s, want tag %s", pod.Name, img, e.nextTag)
	}
	select {
	case <-oldLog.done:
	case <-time.After(time.Minute):
		t.Fatalf("the old daemon pod %s did not exit within a minute of the upgrade", oldPod)
	}
	const kept = "exists: leaving classes for the next daemon"
	decision := exitLines(oldLog.String())
	if !strings.Contains(oldLog.String(), kept) || strings.Contains(oldLog.String(), "removed all QoS classes") {
		t.Errorf("the old daemon %s did not keep its state for the next one (want %q); its log:\n%s", oldPod, kept, oldLog.String())
	}
	t.Logf("old daemon %s on exit:\n  %s", oldPod, strings.Join(decision, "\n  "))

	after := e.htb(t)
	t.Logf("tc on %s before the upgrade: %s, sent %d bytes; %s, sent %d bytes", e.extDev, before.root, before.rootSent, before.class, before.classSent)
	t.Logf("tc on %s after the upgrade:  %s, sent %d bytes; %s, sent %d bytes", e.extDev, after.root, after.rootSent, after.class, after.classSent)
	if after.rootSent < before.rootSent {
		t.Errorf("the root HTB qdisc's counter went back from %d to %d bytes: it was created again during the upgrade", before.rootSent, after.rootSent)
	}
	if after.classID != before.classID || after.classSent < before.classSent {
		t.Errorf("class %s (%d bytes) before the upgrade, %s (%d bytes) after: want the same class, its counter going on",
			before.classID, before.classSent, after.classID, after.classSent)
	}
	out, err := e.run(t, e.kubectl, "-n", namespace, "logs", pod.Name, "-c", "pisa-daemon")
	if err != nil {
		t.Fatalf("kubectl logs %s: %v\n%s", pod.Name, err, out)
	}
	if strings.Contains(out, "root HTB qdisc 1: added") || strings.Contains(out, "pinned maps are incompatible") {
		t.Errorf("the new daemon %s set the device up again instead of adopting it; its log:\n%s", pod.Name, out)
	}
	var adopted []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "adopted") || strings.Contains(l, "class set") || strings.Contains(l, "cleanup-on-exit") {
			adopted = append(adopted, l)
		}
	}
	t.Logf("new daemon %s (%s) adopted the state:\n  %s", pod.Name, pod.Spec.Containers[0].Image, strings.Join(adopted, "\n  "))
}

// daemonCleanedUp checks, after helm uninstall, that the daemon removed what it created: no
// class on the device, the root qdisc no longer the daemon's HTB, the pin directory gone. log is
// the daemon pod's log, followed from before the uninstall.
func (e *env) daemonCleanedUp(ctx context.Context, t *testing.T, pod string, log *logStream) {
	t.Helper()
	select {
	case <-log.done:
	case <-time.After(time.Minute):
		t.Errorf("the daemon pod %s did not exit within a minute of helm uninstall", pod)
	}
	decision := exitLines(log.String())
	t.Logf("daemon %s on helm uninstall:\n  %s", pod, strings.Join(decision, "\n  "))
	if !strings.Contains(log.String(), "removed all QoS classes, classifiers and pinned objects") {
		t.Errorf("the daemon %s did not clean up on helm uninstall; its log:\n%s", pod, log.String())
	}
	if err := poll(ctx, time.Minute, func() (bool, error) {
		c, err := exec.Command("tc", "class", "show", "dev", e.extDev).CombinedOutput()
		if err != nil || strings.TrimSpace(string(c)) != "" {
			return false, fmt.Errorf("tc classes left on %s: %v %s", e.extDev, err, c)
		}
		q, err := exec.Command("tc", "qdisc", "show", "dev", e.extDev).CombinedOutput()
		if err != nil || strings.Contains(string(q), "qdisc htb 1: root") {
			return false, fmt.Errorf("the daemon's root HTB qdisc is left on %s: %v %s", e.extDev, err, q)
		}
		if _, err := os.Stat(filepath.Join(e.bpffs, "pisa-daemon")); !os.IsNotExist(err) {
			return false, fmt.Errorf("pin directory %s left: %v", filepath.Join(e.bpffs, "pisa-daemon"), err)
		}
		return true, nil
	}); err != nil {
		t.Error(err)
	}
}
