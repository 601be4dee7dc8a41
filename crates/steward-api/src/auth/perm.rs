//! One marker type per `Permission`, so a handler can name the permission it needs in its
//! signature: `auth: Authorized<perm::VisitorsRead>`.

use steward_core::Permission;

pub trait Perm {
    const PERMISSION: Permission;
}

macro_rules! markers {
    ($($name:ident),* $(,)?) => {
        $(
            #[derive(Debug)]
            pub struct $name;
            impl Perm for $name {
                const PERMISSION: Permission = Permission::$name;
            }
        )*
    };
}

markers!(
    TenantsCreate,
    TenantsList,
    TenantRead,
    TenantOffboard,
    StaffManage,
    SubprocessorsManage,
    PolicyNoticesManage,
    SelfRead,
    UsersManage,
    ApiKeysManage,
    KeysRotate,
    VisitorsRead,
    VisitorsWrite,
    VisitorsErase,
    ConsentsWrite,
    RetentionManage,
    LegalHoldManage,
    SubprocessorAuthorizationsManage,
    AccessRequestsCreate,
    AccessRequestsDecide,
    AccessRequestsApproveBreakGlass,
    VisitorsReadUnderGrant,
    AuditRead,
    TenantAuditReadJustified,
    PlatformAuditRead,
    TransfersRead,
    StaffAccessLogRead,
    NoticesRead,
    IncidentsManage,
    SubprocessorPull,
);
