"""Mitogen's linear strategy, loaded from the kit's virtual environment.

Mitogen keeps one Python interpreter per host alive for the whole run instead of starting
one per task, which makes a converge of the local lab about three times faster (see
docs/decisions/0003-mitogen.md). Selected in ansible.cfg; run with ANSIBLE_STRATEGY=linear
to compare or to work around a Mitogen problem.
"""

import ansible.plugins.strategy.linear
import ansible_mitogen.strategy


class StrategyModule(ansible_mitogen.strategy.StrategyMixin,
                     ansible.plugins.strategy.linear.StrategyModule):
    pass
