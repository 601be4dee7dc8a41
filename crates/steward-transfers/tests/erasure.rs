//! Erasure propagation and the ledger views: erasing a visitor raises a notice for every
//! subprocessor that received its data; the subprocessor lists and acknowledges it; the tenant
//! sees it acknowledged, pending or overdue. The ledger and the visitor's export show each pull
//! with its fields.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use steward_store::pagination::PageRequest;
use steward_transfers::erasure::{self, NoticeState};
use steward_transfers::ledger::{self, TransferFilter};
use steward_visitors::Access;

use common::*;

fn page() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

both!(ledger_and_export_show_each_pull_with_its_fields, |env| {
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    let tax = env.subprocessor("TaxCalc");
    let v = env.visitor(&tenant);
    let other = env.visitor(&tenant);
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment"],
        &["name", "address"],
        None,
        None,
    )
    .expect("ship");
    env.authorize(&tenant, &tax, &["tax"], &["address.country"], None, None)
        .expect("tax");
    let p1 = env
        .pull(&ship, &tenant, "fulfillment", None, 100)
        .expect("pull ship");
    env.advance_days(1);
    let p2 = env.pull(&tax, &tenant, "tax", None, 100).expect("pull tax");
    env.advance_days(1);
    let p3 = env
        .pull(&ship, &tenant, "fulfillment", None, 100)
        .expect("pull ship again");

    // The ledger, whole and filtered.
    let all = env.read(|c| ledger::list(c, &tenant, &TransferFilter::default(), &page()));
    let ids: Vec<&str> = all.items.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            p1.transfer_id.as_str(),
            p2.transfer_id.as_str(),
            p3.transfer_id.as_str()
        ]
    );
    let by_sub = TransferFilter {
        subprocessor_id: Some(tax.clone()),
        ..Default::default()
    };
    let only_tax = env.read(|c| ledger::list(c, &tenant, &by_sub, &page()));
    assert_eq!(only_tax.items.len(), 1);
    assert_eq!(only_tax.items[0].fields, "address.country");
    let t2_at = only_tax.items[0].occurred_at;
    let by_time = TransferFilter {
        from: Some(t2_at),
        ..Default::default()
    };
    assert_eq!(
        env.read(|c| ledger::list(c, &tenant, &by_time, &page()))
            .items
            .len(),
        2
    );
    let by_visitor = TransferFilter {
        visitor_id: Some(v.clone()),
        subprocessor_id: Some(ship.clone()),
        ..Default::default()
    };
    assert_eq!(
        env.read(|c| ledger::list(c, &tenant, &by_visitor, &page()))
            .items
            .len(),
        2
    );
    let stranger = TransferFilter {
        visitor_id: Some(steward_core::Id::Visitor.generate()),
        ..Default::default()
    };
    assert!(env
        .read(|c| ledger::list(c, &tenant, &stranger, &page()))
        .items
        .is_empty());
    let small = PageRequest {
        limit: 2,
        after: None,
    };
    let first = env.read(|c| ledger::list(c, &tenant, &TransferFilter::default(), &small));
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.next_cursor.as_deref(), Some(p2.transfer_id.as_str()));
    // The API view splits the lists.
    let view = steward_transfers::Transfer::from(all.items[0].clone());
    assert_eq!(view.fields, ["address", "name"]);
    assert_eq!(view.visitor_ids.len(), 2);

    // Recipients of the visitor, per subprocessor.
    let rec = env.read(|c| ledger::recipients_for(c, &tenant, &v));
    assert_eq!(rec.len(), 2);
    let s = rec
        .iter()
        .find(|r| r.subprocessor_id == ship)
        .expect("ship recipient");
    assert_eq!(s.subprocessor_name.as_deref(), Some("ShipFast"));
    assert_eq!(s.fields, ["address", "name"]);
    let tids: Vec<&str> = s.transfers.iter().map(|t| t.transfer_id.as_str()).collect();
    assert_eq!(tids, [p1.transfer_id.as_str(), p3.transfer_id.as_str()]);
    assert!(s.last_at > s.first_at);
    let t = rec
        .iter()
        .find(|r| r.subprocessor_id == tax)
        .expect("tax recipient");
    assert_eq!(t.fields, ["address.country"]);
    assert_eq!(t.transfers.len(), 1);
    assert_eq!(t.transfers[0].purpose, "tax");

    // The data-subject export lists the same recipients.
    let access = Access::of(&tenant_user(steward_core::Role::TenantAdmin, &tenant), None);
    let export = env
        .rt
        .block_on(env.visitors.export(&tenant, &access, &v))
        .expect("export");
    let recipients = export.recipients.as_array().expect("recipients array");
    assert_eq!(recipients.len(), 2);
    let ship_json = recipients
        .iter()
        .find(|r| r["subprocessor_id"] == ship.as_str())
        .expect("ship in export");
    assert_eq!(ship_json["fields"], serde_json::json!(["address", "name"]));
    assert_eq!(ship_json["transfers"].as_array().unwrap().len(), 2);
    assert!(!export.recipients.to_string().contains("ada@example.com"));
    let _ = other;
});

// A recipient's fields are the union of every set it was sent: a new set adds its names, a set
// already recorded (or an empty one) changes nothing, however often it is sent again.
both!(recipient_fields_are_the_union_of_every_set_sent, |env| {
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    let v = env.visitor(&tenant);
    let bare = env.visitor_with(&tenant, serde_json::json!({"name": "Bo"}));
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment"],
        &["name", "address"],
        None,
        None,
    )
    .expect("fulfillment");
    env.authorize(
        &tenant,
        &ship,
        &["support"],
        &["email", "phone"],
        None,
        None,
    )
    .expect("support");
    let stored = |vid: &str| {
        env.read(|c| ledger::recipient_rows(c, &tenant, vid))
            .into_iter()
            .map(|r| r.fields)
            .collect::<Vec<_>>()
    };
    env.pull(&ship, &tenant, "fulfillment", None, 100)
        .expect("pull 1");
    env.pull(&ship, &tenant, "support", None, 100)
        .expect("pull 2");
    let after_two = stored(&v);
    for _ in 0..3 {
        env.pull(&ship, &tenant, "fulfillment", None, 100)
            .expect("pull again");
        env.pull(&ship, &tenant, "support", None, 100)
            .expect("pull again");
    }
    // Sets already recorded add nothing, however often they are sent again.
    assert_eq!(stored(&v), after_two);
    let rec = env.read(|c| ledger::recipients_for(c, &tenant, &v));
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].fields, ["address", "email", "name", "phone"]);
    assert_eq!(rec[0].transfers.len(), 8);
    // `bare` has a name only: the support pulls sent it nothing.
    let rec = env.read(|c| ledger::recipients_for(c, &tenant, &bare));
    assert_eq!(rec[0].fields, ["name"]);
    assert_eq!(stored(&bare), ["name"]);
});

both!(erasure_notice_is_seen_acknowledged_and_receipted, |env| {
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    let bystander = env.subprocessor("NeverPulled");
    let v = env.visitor(&tenant);
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment"],
        &["name", "address"],
        None,
        None,
    )
    .expect("authorize");
    env.pull(&ship, &tenant, "fulfillment", None, 100)
        .expect("pull");

    let access = Access::of(&tenant_user(steward_core::Role::TenantAdmin, &tenant), None);
    env.rt
        .block_on(env.visitors.erase(&tenant, &access, &v))
        .expect("erase");

    let now = env.now();
    let (s, b) = (ship.clone(), bystander.clone());
    let mine = env.read(|c| erasure::list_for_subprocessor(c, &s, &page(), false, now));
    assert_eq!(mine.items.len(), 1);
    let notice = &mine.items[0];
    assert_eq!(notice.visitor_id, v);
    assert_eq!(notice.tenant_id, tenant);
    assert_eq!(notice.reason, "erasure");
    assert_eq!(notice.state, NoticeState::Pending);
    assert!(env
        .read(|c| erasure::list_for_subprocessor(c, &b, &page(), true, now))
        .items
        .is_empty());

    // Another subprocessor cannot acknowledge it.
    let (b, nid) = (bystander.clone(), notice.id.clone());
    let e = env
        .write(move |c| erasure::ack(c, &b, &nid, now))
        .unwrap_err();
    assert_eq!(code(&e).0, "not_found");

    env.advance_days(2);
    let (s, nid, ack_at) = (ship.clone(), notice.id.clone(), env.now());
    let acked = env
        .write(move |c| erasure::ack(c, &s, &nid, ack_at))
        .expect("ack");
    assert_eq!(acked.state, NoticeState::Acknowledged);
    // Idempotent: the first acknowledgement stands.
    env.advance_days(1);
    let (s, nid, later) = (ship.clone(), notice.id.clone(), env.now());
    let again = env
        .write(move |c| erasure::ack(c, &s, &nid, later))
        .expect("ack again");
    assert_eq!(again.acknowledged_at, acked.acknowledged_at);

    // The unacknowledged list is empty now; with acknowledged ones it is there.
    let s = ship.clone();
    assert!(env
        .read(|c| erasure::list_for_subprocessor(c, &s, &page(), false, later))
        .items
        .is_empty());
    let s = ship.clone();
    assert_eq!(
        env.read(|c| erasure::list_for_subprocessor(c, &s, &page(), true, later))
            .items
            .len(),
        1
    );

    // The tenant sees the receipt.
    let view = env.read(|c| erasure::list_for_tenant(c, &tenant, &page(), later));
    assert_eq!(view.items.len(), 1);
    assert_eq!(view.items[0].state, NoticeState::Acknowledged);
    assert_eq!(view.items[0].subprocessor_name.as_deref(), Some("ShipFast"));
    assert_eq!(
        view.items[0].acknowledged_at.map(|t| t.naive_utc()),
        Some(ack_at)
    );
    let filter = steward_audit::EventFilter {
        action: Some("erasure_notice.ack".into()),
        ..Default::default()
    };
    let events = env
        .read(|c| steward_audit::list(c, &tenant, &filter, None, 10))
        .0;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor.id, ship);

    // The record of who got what survives the erasure (it holds no PII).
    let rec = env.read(|c| ledger::recipients_for(c, &tenant, &v));
    assert_eq!(rec.len(), 1);
    // The erased visitor is not pulled again.
    let page = env
        .pull(&ship, &tenant, "fulfillment", None, 100)
        .expect("pull after erasure");
    assert!(page.items.is_empty());
    let report = env.read(|c| steward_audit::verify(c, &tenant, None, &mut |_| {}));
    assert!(report.ok, "{report:?}");
});

both!(an_unacknowledged_notice_past_due_is_overdue, |env| {
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    let v = env.visitor(&tenant);
    let untouched = env.visitor(&tenant);
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment"],
        &["name"],
        None,
        Some(env.clock.now() + chrono::Duration::days(1)),
    )
    .expect("authorize");
    env.pull(&ship, &tenant, "fulfillment", None, 100)
        .expect("pull");
    let access = Access::of(&tenant_user(steward_core::Role::TenantAdmin, &tenant), None);
    env.rt
        .block_on(env.visitors.erase(&tenant, &access, &v))
        .expect("erase");

    let now = env.now();
    let view = env.read(|c| erasure::list_for_tenant(c, &tenant, &page(), now));
    assert_eq!(view.items.len(), 1);
    assert_eq!(view.items[0].state, NoticeState::Pending);
    env.advance_days(31);
    let later = env.now();
    let view = env.read(|c| erasure::list_for_tenant(c, &tenant, &page(), later));
    assert_eq!(view.items[0].state, NoticeState::Overdue);

    // Erasing a visitor nobody received raises nothing.
    let fresh = env.visitor(&tenant);
    env.rt
        .block_on(env.visitors.erase(&tenant, &access, &fresh))
        .expect("erase fresh");
    assert_eq!(
        env.read(|c| erasure::list_for_tenant(c, &tenant, &page(), later))
            .items
            .len(),
        1
    );
    let _ = untouched;
});
