//! The extractor every protected handler takes first.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::{ready, Ready};
use steward_core::{Error, Principal};

use super::middleware::AuthState;
use super::perm::Perm;
use crate::error::ApiError;

/// Proof that the caller is authenticated and holds `P` for the tenant named in the path
/// (`{tid}`), if any. A tenant principal asking about another tenant gets 404.
#[derive(Debug)]
pub struct Authorized<P: Perm> {
    pub principal: Principal,
    _permission: PhantomData<P>,
}

impl<P: Perm> Authorized<P> {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// The authenticated principal, whatever it may do (or the authentication error).
pub fn principal_of(req: &HttpRequest) -> Result<Principal, Error> {
    match req.extensions().get::<AuthState>() {
        Some(AuthState::Authenticated(p)) => Ok(p.clone()),
        Some(AuthState::Failed(detail)) => Err(Error::Unauthenticated { detail }),
        _ => Err(Error::Unauthenticated {
            detail: "authentication required",
        }),
    }
}

impl<P: Perm> FromRequest for Authorized<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = principal_of(req).and_then(|principal| {
            principal.require(P::PERMISSION, req.match_info().get("tid"))?;
            Ok(Authorized {
                principal,
                _permission: PhantomData,
            })
        });
        ready(result.map_err(ApiError))
    }
}

/// Like `Authorized`, for routes open to any of several permissions; `held` says which one
/// the caller has (the first that applies).
#[derive(Debug)]
pub struct AuthorizedAny<P: super::perm::PermAny> {
    pub principal: Principal,
    pub held: steward_core::Permission,
    _permission: PhantomData<P>,
}

impl<P: super::perm::PermAny> FromRequest for AuthorizedAny<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = principal_of(req).and_then(|principal| {
            let tid = req.match_info().get("tid");
            let mut first_err = None;
            for p in P::ANY {
                match principal.require(*p, tid) {
                    Ok(()) => {
                        return Ok(AuthorizedAny {
                            principal,
                            held: *p,
                            _permission: PhantomData,
                        })
                    }
                    // A foreign tenant is a 404 whatever the permission.
                    Err(Error::NotFound) => return Err(Error::NotFound),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            Err(first_err.unwrap_or(Error::Forbidden {
                permission: P::ANY[0],
            }))
        });
        ready(result.map_err(ApiError))
    }
}
