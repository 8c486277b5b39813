"""Which installer builds an env: the installers by name, what ``auto`` means here, and the header's notes.

``--isoenv-installer`` and the marker's ``installer=`` name one of
:data:`INSTALLERS`; ``auto`` (the default) is uv when it is installed and can
follow the user's pip settings, else pip. The interface they share is
:class:`pytest_isoenv.installers.api.Installer`.
"""

from __future__ import annotations

import os

from pytest_isoenv.errors import SpecError
from pytest_isoenv.installers.api import Installer, InstallerDirs
from pytest_isoenv.installers.pip import PipInstaller
from pytest_isoenv.installers.uv import UvInstaller
from pytest_isoenv.key.settings import PipConfig, dropped_pip_settings, uv_from_pip
from pytest_isoenv.key.uvconfig import uv_config, uv_config_files

#: The installers by name: the choices of ``--isoenv-installer``.
INSTALLERS: dict[str, type[Installer]] = {"pip": PipInstaller, "uv": UvInstaller}


def auto_choice(pip: PipConfig | None = None) -> tuple[type[Installer], str | None]:
    """The installer ``auto`` means on this machine, and why it is not uv when uv is installed.

    uv when it is installed and can follow the user's pip settings (*pip*, read from ``os.environ``
    unless given); pip otherwise.
    """
    if UvInstaller.unavailable() is not None:
        return PipInstaller, None
    pip = PipConfig.read(os.environ) if pip is None else pip
    cannot = uv_from_pip(pip.settings).not_carried
    if cannot:
        return PipInstaller, f"uv cannot follow the pip setting(s) {', '.join(cannot)}"
    return UvInstaller, None


def lock_installer(name: str | None) -> str | None:
    """The installer an env made of a lock file uses when *name* is asked for: uv for ``auto``, when installed.

    Only uv installs lock files (see :mod:`pytest_isoenv.spec.lockfiles`); ``None`` leaves the choice to *name*,
    and an installer that cannot install the lock says so.
    """
    return "uv" if name in (None, "auto") and UvInstaller.unavailable() is None else None


def installer_notes(name: str | None) -> tuple[str, list[str]]:
    """For the report header: the installer *name* means, with why ``auto`` did not choose uv; and warnings.

    The warnings name the user's settings that no build follows: pip settings
    an explicitly chosen uv cannot follow, settings of either tool that would
    send installs out of the env, and pip settings that would add requirements
    to every env.
    """
    pip = PipConfig.read(os.environ)
    cls, why = auto_choice(pip) if name in (None, "auto") else (installer_class(name), None)
    label = f"{cls.name} (auto: not uv, as {why})" if why else cls.name
    warnings = []
    if cls is UvInstaller:
        cannot = uv_from_pip(pip.settings).not_carried
        if cannot:
            warnings.append(
                f"the uv installer ignores the pip setting(s) {', '.join(cannot)}, which uv cannot follow; "
                "use --isoenv-installer pip (or auto) to have them followed"
            )
        try:
            elsewhere = [f"{option} (uv configuration)" for option in uv_config(uv_config_files(os.environ))[1]]
        except ValueError:
            elsewhere = []
    else:
        elsewhere = dropped_pip_settings(pip.settings)
    if elsewhere:
        warnings.append(f"ignoring setting(s) that would install outside the env: {', '.join(elsewhere)}")
    added = dropped_pip_settings(pip.settings, requirements=True)
    if added:
        warnings.append(
            f"ignoring pip setting(s) that would add requirements to every env: {', '.join(added)}; "
            "ask for them in the isoenv marker instead (requirements_files=, editable=, groups=)"
        )
    return label, warnings


def installer_class(name: str | None, *, where: str | None = None, pip: PipConfig | None = None) -> type[Installer]:
    """The installer called *name* (``None`` or ``"auto"``: see :func:`auto_choice`, which reads *pip*).

    Raises :class:`SpecError` for an unknown name or an installer this machine lacks.
    """
    choices = f"Choose one of: auto, {', '.join(INSTALLERS)}"
    if name in (None, "auto"):
        return auto_choice(pip)[0]
    if name not in INSTALLERS:
        raise SpecError(f"unknown installer {name!r}", where=where, fix=choices)
    reason = INSTALLERS[name].unavailable()
    if reason is not None:
        raise SpecError(f"installer {name!r} is not available ({reason})", where=where, fix=choices)
    return INSTALLERS[name]


def select_installer(name: str | None, *, dirs: InstallerDirs, where: str | None = None) -> Installer:
    """The installer called *name* (``None`` or ``"auto"``: the best available), keeping its data in *dirs*.

    The user's pip configuration is read once, for the choice and the installer both.
    """
    pip = PipConfig.read(os.environ)
    return installer_class(name, where=where, pip=pip)(dirs, pip)
