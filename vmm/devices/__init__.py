"""Device models. They know nothing of KVM: the VMM injects interrupt and event callables."""
