"""All models, imported here so Alembic and the mappers see every table."""

from app.models.audit import AuditChainHead, AuditLog
from app.models.customers import CodeSequence, Customer, CustomerStatusChange, FollowUp
from app.models.dictionaries import (
    DICTIONARIES,
    CustomerLevel,
    CustomerSource,
    CustomerType,
    FollowUpMethod,
    Industry,
)
from app.models.org import CrmUser, Department, RoleDataScope
from app.models.security import RecoveryCode, StepUpGrant, TotpCredential

__all__ = [
    "AuditChainHead",
    "AuditLog",
    "CodeSequence",
    "CrmUser",
    "Customer",
    "CustomerLevel",
    "CustomerSource",
    "CustomerStatusChange",
    "CustomerType",
    "DICTIONARIES",
    "Department",
    "FollowUp",
    "FollowUpMethod",
    "Industry",
    "RecoveryCode",
    "RoleDataScope",
    "StepUpGrant",
    "TotpCredential",
]
