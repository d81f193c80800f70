package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// GetConditions returns the conditions of the InfraCluster (CAPI conditions.Getter).
func (c *InfraCluster) GetConditions() []metav1.Condition { return c.Status.Conditions }

// SetConditions sets the conditions of the InfraCluster (CAPI conditions.Setter).
func (c *InfraCluster) SetConditions(conditions []metav1.Condition) { c.Status.Conditions = conditions }

// GetConditions returns the conditions of the NestCluster (CAPI conditions.Getter).
func (c *NestCluster) GetConditions() []metav1.Condition { return c.Status.Conditions }

// SetConditions sets the conditions of the NestCluster (CAPI conditions.Setter).
func (c *NestCluster) SetConditions(conditions []metav1.Condition) { c.Status.Conditions = conditions }

// GetConditions returns the conditions of the NestMachine (CAPI conditions.Getter).
func (m *NestMachine) GetConditions() []metav1.Condition { return m.Status.Conditions }

// SetConditions sets the conditions of the NestMachine (CAPI conditions.Setter).
func (m *NestMachine) SetConditions(conditions []metav1.Condition) { m.Status.Conditions = conditions }

// GetConditions returns the conditions of the NestMachineTemplate (CAPI conditions.Getter).
func (t *NestMachineTemplate) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions sets the conditions of the NestMachineTemplate (CAPI conditions.Setter).
func (t *NestMachineTemplate) SetConditions(conditions []metav1.Condition) {
	t.Status.Conditions = conditions
}
