"""Identity: who someone is. So far only the first-operator bootstrap link.

Accounts, passwords, sessions, second factors and API keys arrive with the identity issue; the
bootstrap endpoint answers "not available yet" until then, but its token mechanism is real.
"""

from bastion.identity.errors import BootstrapTokenInvalid
from bastion.identity.first_operator import FirstOperatorBootstrap, IssuedLink

__all__ = ["BootstrapTokenInvalid", "FirstOperatorBootstrap", "IssuedLink"]
