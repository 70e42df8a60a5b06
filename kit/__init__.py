"""The operator tooling behind ./podium: lab provisioner, inventory, Ansible and test runs."""
