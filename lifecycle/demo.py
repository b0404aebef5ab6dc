"""The demo pipeline: environments, access groups and applications in the states the seed starts from.

eCommerce runs 0.3 from Quality Assurance to Production with a defect in
ShoppingCart's order total (it ignores the line quantity), ready for the hotfix
of seed/apply-a-hotfix.md, while Development has moved on to 0.4 and untagged
work that touches cart.py elsewhere, so merging the fix back is a clean
three-way merge. The other applications show the other states of the grid.

The history is made through the console's own publish, tag and deploy
functions, so it is real history (versions, parents, changes, hotfixes), and
the module sources are real files under demo_content/<application>/<module>/<snapshot>/.

`make run` also makes the four environments deliver to this machine
(prepare_agents): one agent per environment, as the Procfile runs them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.text import slugify

from lifecycle.delivery import agent_tokens
from lifecycle.deploying.switching import deploy_tag
from lifecycle.models import (
    AccessLevel,
    AgentToken,
    Application,
    Delivery,
    Environment,
    EnvironmentAccess,
    Module,
)
from lifecycle.publishing import publish
from lifecycle.tagging import tag_environment

CONTENT_DIR = Path(__file__).resolve().parent / "demo_content"

DEVELOPMENT = "Development"
QUALITY_ASSURANCE = "Quality Assurance"
PRE_PRODUCTION = "Pre-Production"
PRODUCTION = "Production"
ENVIRONMENTS = [DEVELOPMENT, QUALITY_ASSURANCE, PRE_PRODUCTION, PRODUCTION]
AFTER_DEVELOPMENT = (QUALITY_ASSURANCE, PRE_PRODUCTION, PRODUCTION)

GROUP_ACCESS = {
    "Viewers": dict.fromkeys(ENVIRONMENTS, AccessLevel.VIEW),
    "Developers": {
        DEVELOPMENT: AccessLevel.DEPLOY,
        QUALITY_ASSURANCE: AccessLevel.DEPLOY,
        PRE_PRODUCTION: AccessLevel.DEPLOY,
        PRODUCTION: AccessLevel.VIEW,
    },
    "Release managers": dict.fromkeys(ENVIRONMENTS, AccessLevel.FULL),
}


class DemoError(Exception):
    """The demo cannot be loaded into this database; the message says why."""


@dataclass(frozen=True)
class Publish:
    """Publish each module's `snapshot` folder into `environment`, with its comment."""

    environment: str
    snapshot: str
    comments: dict[str, str]


@dataclass(frozen=True)
class Tag:
    environment: str
    number: str
    notes: str = ""


@dataclass(frozen=True)
class Deploy:
    number: str
    environments: tuple[str, ...]


@dataclass(frozen=True)
class DemoApplication:
    name: str
    description: str
    folder: str
    modules: dict[str, str]  # name -> description
    history: tuple[Publish | Tag | Deploy, ...]


DEMO_APPLICATIONS = [
    DemoApplication(
        name="eCommerce",
        description="The online shop of Linden & Oak: product catalogue, cart, payments and storefront.",
        folder="ecommerce",
        modules={
            "ShoppingCart": "The customer's cart and the order total: discounts, shipping and VAT.",
            "Catalog": "Products and the storefront's search.",
            "Payments": "Card payment provider adapter: charges and refunds.",
            "WebUI": "Storefront views, templates, styles and images.",
        },
        history=(
            Publish(
                DEVELOPMENT,
                "0.3",
                {
                    "ShoppingCart": "Cart with coupons, volume discounts, shipping and VAT per region",
                    "Catalog": "Product catalogue with free-text search",
                    "Payments": "Charges and partial refunds through the card provider",
                    "WebUI": "Storefront: product list, search box and cart page",
                },
            ),
            Tag(DEVELOPMENT, "0.3", notes="Spring release"),
            Deploy("0.3", AFTER_DEVELOPMENT),
            Publish(
                DEVELOPMENT,
                "0.4",
                {
                    "Catalog": "Search filters: category, price range, in stock only",
                    "Payments": "Every refund records a reason for the returns report",
                    "WebUI": "Filter panel beside the search results",
                },
            ),
            Tag(DEVELOPMENT, "0.4", notes="Search filters and refund reasons"),
            Publish(
                DEVELOPMENT,
                "dev-work",
                {
                    "ShoppingCart": "Cart.remove_line: take a product out of the cart",
                    "WebUI": "Remove button on each cart line",
                },
            ),
        ),
    ),
    DemoApplication(
        name="HR Portal",
        description="Staff directory, payroll and leave for the company's employees.",
        folder="hr-portal",
        modules={
            "Employees": "Staff directory and reporting lines.",
            "Payroll": "Monthly payslips.",
            "LeaveRequests": "Days off, requested and approved.",
        },
        history=(
            Publish(
                DEVELOPMENT,
                "1.2",
                {
                    "Employees": "Directory with reporting chains",
                    "Payroll": "Payslips with pension and tax bands",
                },
            ),
            Tag(DEVELOPMENT, "1.2", notes="Tax bands of the new fiscal year"),
            Deploy("1.2", AFTER_DEVELOPMENT),
            Publish(
                DEVELOPMENT,
                "1.3",
                {
                    "Payroll": "Overtime paid at time and a half",
                    "LeaveRequests": "Leave requests and approval",
                },
            ),
            Tag(DEVELOPMENT, "1.3", notes="Overtime and leave requests"),
            Deploy("1.3", (QUALITY_ASSURANCE,)),
        ),
    ),
    DemoApplication(
        name="Customer Support",
        description="Support tickets with service levels, and the help centre's articles.",
        folder="customer-support",
        modules={
            "Tickets": "Tickets, their states and response deadlines.",
            "KnowledgeBase": "Help articles suggested to agents.",
        },
        history=(
            Publish(
                DEVELOPMENT,
                "2.1",
                {
                    "Tickets": "Response deadlines by priority",
                    "KnowledgeBase": "Article suggestions by subject",
                },
            ),
            Tag(DEVELOPMENT, "2.1", notes="Service levels"),
            Deploy("2.1", AFTER_DEVELOPMENT),
            # Published straight into Quality Assurance: an open hotfix there.
            Publish(
                QUALITY_ASSURANCE,
                "qa-hotfix",
                {"Tickets": "Hotfix: response deadlines no longer run over the weekend"},
            ),
        ),
    ),
    DemoApplication(
        name="Inventory",
        description="Stock levels per warehouse. New: not yet released.",
        folder="inventory",
        modules={
            "Stock": "Stock movements and levels.",
            "Warehouses": "Warehouses and the regions they serve.",
        },
        history=(
            Publish(
                DEVELOPMENT,
                "0.1",
                {"Stock": "Stock ledger", "Warehouses": "Amsterdam and Newark warehouses"},
            ),
            Tag(DEVELOPMENT, "0.1", notes="First internal preview"),
        ),
    ),
]


def read_snapshot(folder: Path) -> dict[str, bytes]:
    """The files of one module snapshot: relative POSIX path -> bytes."""
    files = {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        # Byte code that a tool may leave beside the sources is not part of the module.
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    if not files:
        raise DemoError(f"The demo content folder {folder} is missing or empty.")
    return files


def load_demo() -> bool:
    """Create the demo pipeline; return False, changing nothing, when it is already there."""
    names = [spec.name for spec in DEMO_APPLICATIONS]
    with transaction.atomic():
        existing = set(Application.objects.filter(name__in=names).values_list("name", flat=True))
        if existing == set(names):
            return False
        if existing:
            raise DemoError(
                f"Some demo applications already exist ({', '.join(sorted(existing))}) but not the others; "
                "rename them or load the demo into another database."
            )
        module_names = [name for spec in DEMO_APPLICATIONS for name in spec.modules]
        taken = list(Module.objects.filter(name__in=module_names).values_list("name", flat=True))
        if taken:
            raise DemoError(
                f"Modules named {', '.join(sorted(taken))} already belong to other applications; "
                "module names are unique, so the demo cannot be loaded here."
            )
        environments = _environments()
        _groups(environments)
        for spec in DEMO_APPLICATIONS:
            _play(spec, environments)
    return True


def _environments() -> dict[str, Environment]:
    environments = {}
    for position, name in enumerate(ENVIRONMENTS, start=1):
        environments[name], _ = Environment.objects.get_or_create(
            name=name, defaults={"position": position, "is_production": name == PRODUCTION}
        )
    # Publishing anywhere but the first environment opens a hotfix, so the demo's
    # development history only makes sense if Development comes first.
    if not environments[DEVELOPMENT].is_first():
        first = Environment.objects.first_in_pipeline()
        raise DemoError(
            f"{first.name} comes before Development in the pipeline; the demo needs Development first."
        )
    return environments


def _groups(environments: dict[str, Environment]) -> None:
    for group_name, levels in GROUP_ACCESS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for environment_name, level in levels.items():
            # An existing group keeps the access an administrator already gave it.
            EnvironmentAccess.objects.get_or_create(
                group=group, environment=environments[environment_name], defaults={"level": level}
            )


def _play(spec: DemoApplication, environments: dict[str, Environment]) -> None:
    application = Application.objects.create(name=spec.name, description=spec.description)
    modules = {
        name: Module.objects.create(application=application, name=name, description=description)
        for name, description in spec.modules.items()
    }
    for step in spec.history:
        match step:
            case Publish():
                for module_name, comment in step.comments.items():
                    folder = CONTENT_DIR / spec.folder / module_name / step.snapshot
                    result = publish(
                        modules[module_name],
                        environments[step.environment],
                        read_snapshot(folder),
                        comment=comment,
                    )
                    if not result.created:
                        raise DemoError(f"{folder} is identical to the version it should change.")
            case Tag():
                tag_environment(application, environments[step.environment], step.number, notes=step.notes)
            case Deploy():
                tag = application.tags.get(number=step.number)
                for environment_name in step.environments:
                    deploy_tag(tag, environments[environment_name])


# ----------------------------------------------------------------------------- the demo agents

AGENT_TOKEN_NAME = "Demo agent (make run)"


@dataclass(frozen=True)
class DemoAgent:
    """Where the Procfile's agent for one demo environment finds its token and writes its releases."""

    environment: Environment
    slug: str
    token_file: Path
    root: Path
    new_token: bool  # False when the token file already held a token that authenticates


def agent_slug(environment_name: str) -> str:
    """The environment's folder and token file name: "Quality Assurance" -> "quality-assurance"."""
    return slugify(environment_name)


def prepare_agents(var_dir: Path) -> list[DemoAgent]:
    """Make the demo environments deliver to this machine, through one agent each (the Procfile's).

    Each becomes an `agent` environment delivering into var_dir/environments/<slug>/, its agent
    reading its token from var_dir/agents/<slug>.token (mode 0600). A token is made only when that
    file is missing or its token no longer authenticates for the environment (revoked, or made in
    another database), so running this again makes no new tokens.
    """
    environments = {
        environment.name: environment for environment in Environment.objects.filter(name__in=ENVIRONMENTS)
    }
    missing = [name for name in ENVIRONMENTS if name not in environments]
    if missing:
        raise DemoError(
            f"The demo environments {', '.join(missing)} do not exist; run manage.py load_demo first."
        )
    tokens_dir = var_dir / "agents"
    tokens_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    agents = []
    for name in ENVIRONMENTS:
        environment = environments[name]
        if environment.delivery != Delivery.AGENT:
            environment.delivery = Delivery.AGENT
            environment.save(update_fields=["delivery"])
        slug = agent_slug(name)
        token_file = tokens_dir / f"{slug}.token"
        root = var_dir / "environments" / slug
        root.mkdir(parents=True, exist_ok=True)
        new_token = not _holds_token(token_file, environment)
        if new_token:
            with transaction.atomic():
                _token, raw = agent_tokens.create(environment, AGENT_TOKEN_NAME)
                # Inside the transaction: a file that cannot be written leaves no token behind.
                _write_secret(token_file, raw)
        else:
            token_file.chmod(0o600)  # the file is a secret even if someone loosened it
        agents.append(DemoAgent(environment, slug, token_file, root, new_token))
    return agents


def _holds_token(token_file: Path, environment: Environment) -> bool:
    """True when the file holds an active agent token of `environment`.

    Looked up by its hash rather than through agent_tokens.authenticate, which
    would count this check as a sign of life of an agent that is not running.
    """
    try:
        raw = token_file.read_text().strip()
    except FileNotFoundError:
        return False
    return AgentToken.objects.filter(
        token_hash=agent_tokens.hash_token(raw), environment=environment, revoked_at__isnull=True
    ).exists()


def _write_secret(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing the file at once."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text + "\n")
        os.chmod(temporary, 0o600)  # os.open's mode is cut by the umask, never widened: make it exact
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
