"""All models, imported here so Alembic and the mappers see every table."""

from app.models.activities import Activity, ActivityTemplate, CrmSetting
from app.models.audit import AuditChainHead, AuditLog
from app.models.customers import CodeSequence, Customer, CustomerAlias, CustomerStatusChange, FollowUp
from app.models.dictionaries import (
    DICTIONARIES,
    CustomerLevel,
    CustomerSource,
    CustomerType,
    FollowUpMethod,
    Industry,
)
from app.models.duplicates import DismissedPair
from app.models.notifications import DigestSent, Notification, NotificationPreference, OutboxMessage
from app.models.org import CrmUser, Department, RoleDataScope
from app.models.sales import (
    AssignmentRule,
    AssignmentRuleUser,
    Competitor,
    Contact,
    Lead,
    LeadStatusChange,
    Opportunity,
    OpportunityLine,
    OpportunityStageChange,
    Product,
    Stage,
)
from app.models.security import RecoveryCode, StepUpGrant, TotpCredential
from app.models.sync import SyncConflict, SyncRow, SyncRun, SyncTarget
from app.models.transfers import ImportMapping, TransferJob, TransferSchedule

__all__ = [
    "Activity",
    "ActivityTemplate",
    "CrmSetting",
    "DigestSent",
    "Notification",
    "NotificationPreference",
    "OutboxMessage",
    "AssignmentRule",
    "AssignmentRuleUser",
    "Competitor",
    "Contact",
    "Lead",
    "LeadStatusChange",
    "Opportunity",
    "OpportunityLine",
    "OpportunityStageChange",
    "Product",
    "Stage",
    "AuditChainHead",
    "AuditLog",
    "CodeSequence",
    "CrmUser",
    "Customer",
    "CustomerAlias",
    "CustomerLevel",
    "CustomerSource",
    "CustomerStatusChange",
    "CustomerType",
    "DICTIONARIES",
    "Department",
    "DismissedPair",
    "FollowUp",
    "FollowUpMethod",
    "ImportMapping",
    "Industry",
    "RecoveryCode",
    "RoleDataScope",
    "StepUpGrant",
    "SyncConflict",
    "SyncRow",
    "SyncRun",
    "SyncTarget",
    "TotpCredential",
    "TransferJob",
    "TransferSchedule",
]
