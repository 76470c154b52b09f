package builder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
)

// DecodeObjects adds the custom resources (and Secrets) of a multi-document
// YAML (or JSON) file to all, grouped by namespace (defaultNS when a
// document names none). Unknown fields are errors, as the API server's
// strict validation reports them; other kinds (Deployments, Services…) are
// skipped.
func DecodeObjects(all AllNamespaces, data []byte, defaultNS string) error {
	return YAMLDocs(data, func(doc []byte, kind, name, ns string) error {
		if ns == "" {
			ns = defaultNS
		}
		o := all[ns]
		decode := func(v any) error {
			if err := yaml.UnmarshalStrict(doc, v); err != nil {
				return fmt.Errorf("%s %s: %w", kind, name, err)
			}
			return nil
		}
		var err error
		switch kind {
		case "VirtualDatabase":
			var v v1alpha1.VirtualDatabase
			if err = decode(&v); err == nil {
				v.Namespace = ns
				o.VirtualDatabases = append(o.VirtualDatabases, v)
			}
		case "TrafficStrategy":
			var v v1alpha1.TrafficStrategy
			if err = decode(&v); err == nil {
				v.Namespace = ns
				o.TrafficStrategies = append(o.TrafficStrategies, v)
			}
		case "DatabaseEndpoint":
			var v v1alpha1.DatabaseEndpoint
			if err = decode(&v); err == nil {
				v.Namespace = ns
				o.DatabaseEndpoints = append(o.DatabaseEndpoints, v)
			}
		case "DataShard":
			var v v1alpha1.DataShard
			if err = decode(&v); err == nil {
				v.Namespace = ns
				o.DataShards = append(o.DataShards, v)
			}
		case "QoSClaim":
			var v v1alpha1.QoSClaim
			if err = decode(&v); err == nil {
				v.Namespace = ns
				o.QoSClaims = append(o.QoSClaims, v)
			}
		case "SecurityClaim":
			var v v1alpha1.SecurityClaim
			if err = decode(&v); err == nil {
				v.Namespace = ns
				o.SecurityClaims = append(o.SecurityClaims, v)
			}
		case "Secret":
			var v corev1.Secret
			if err = decode(&v); err == nil {
				if o.Secrets == nil {
					o.Secrets = map[string]map[string][]byte{}
				}
				d := map[string][]byte{}
				for k, b := range v.Data {
					d[k] = b
				}
				for k, s := range v.StringData {
					d[k] = []byte(s)
				}
				o.Secrets[v.Name] = d
			}
		default:
			return nil // other objects (Deployments, Services...) of the same manifests
		}
		all[ns] = o
		return err
	})
}

// YAMLDocs splits multi-document YAML (or JSON) into the documents that
// have a kind, and gives each with its kind, name and namespace.
func YAMLDocs(data []byte, yield func(doc []byte, kind, name, ns string) error) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var head struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return err
		}
		if head.Kind == "" {
			continue // only comments
		}
		if err := yield(doc, head.Kind, head.Metadata.Name, head.Metadata.Namespace); err != nil {
			return err
		}
	}
}
