//! html.rs: builds the tree of an HTML page within the poll's work budget.
//!
//! html5ever's tree builder walks its stack of open elements for many tags (is a `<p>` in button
//! scope? which formatting elements are open?), so a page nested a million levels deep costs it
//! a million steps per tag. The tree builder asks the sink for an element's name at each of those
//! steps, so [`Metered`] (scraper's sink, wrapped) charges one work unit per question and per node
//! it creates, and the text is fed in [`STEP`]-byte pieces, the budget checked between pieces:
//! once it is spent (or the poll cancelled) parsing stops there. Parse errors are dropped rather
//! than collected: a hostile page can have millions.

use std::borrow::Cow;
use std::cell::Ref;

use ego_tree::NodeId;
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{Html, HtmlTreeSink};

use crate::work::{WorkBudget, WorkError};

/// How much text the tree builder gets between two checks of the budget. Small, because the
/// work one piece causes grows with the nesting depth.
const STEP: usize = 1024;

/// Parses `text` as an HTML document, charging `budget`.
pub(super) fn parse_document(text: &str, budget: &WorkBudget) -> Result<Html, WorkError> {
    let sink = Metered {
        inner: HtmlTreeSink::new(Html::new_document()),
        budget,
    };
    let mut parser = html5ever::driver::parse_document(sink, Default::default());
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(STEP);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, after) = rest.split_at(cut);
        if !budget.charge(piece.len() as u64) {
            break;
        }
        parser.process(StrTendril::from_slice(piece));
        rest = after;
    }
    budget.check()?;
    Ok(parser.finish())
}

/// scraper's tree sink, charging the budget for each node it creates and each element name the
/// tree builder asks for.
struct Metered<'b> {
    inner: HtmlTreeSink,
    budget: &'b WorkBudget,
}

impl Metered<'_> {
    fn step(&self) {
        // A spent budget is noticed between pieces of text (see `parse_document`).
        let _ = self.budget.charge(1);
    }
}

impl<'b> TreeSink for Metered<'b> {
    type Handle = NodeId;
    type Output = Html;
    type ElemName<'a>
        = Ref<'a, QualName>
    where
        Self: 'a;

    fn finish(self) -> Html {
        self.inner.finish()
    }

    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> NodeId {
        self.inner.get_document()
    }

    fn elem_name<'a>(&'a self, target: &'a NodeId) -> Ref<'a, QualName> {
        self.step();
        self.inner.elem_name(target)
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> NodeId {
        self.step();
        self.inner.create_element(name, attrs, flags)
    }

    fn create_comment(&self, text: StrTendril) -> NodeId {
        self.step();
        self.inner.create_comment(text)
    }

    fn create_pi(&self, target: StrTendril, data: StrTendril) -> NodeId {
        self.step();
        self.inner.create_pi(target, data)
    }

    fn append(&self, parent: &NodeId, child: NodeOrText<NodeId>) {
        self.step();
        self.inner.append(parent, child);
    }

    fn append_based_on_parent_node(
        &self,
        element: &NodeId,
        prev_element: &NodeId,
        child: NodeOrText<NodeId>,
    ) {
        self.step();
        self.inner
            .append_based_on_parent_node(element, prev_element, child);
    }

    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.inner
            .append_doctype_to_document(name, public_id, system_id);
    }

    fn mark_script_already_started(&self, node: &NodeId) {
        self.inner.mark_script_already_started(node);
    }

    fn get_template_contents(&self, target: &NodeId) -> NodeId {
        self.inner.get_template_contents(target)
    }

    fn same_node(&self, x: &NodeId, y: &NodeId) -> bool {
        self.inner.same_node(x, y)
    }

    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode);
    }

    fn append_before_sibling(&self, sibling: &NodeId, new_node: NodeOrText<NodeId>) {
        self.step();
        self.inner.append_before_sibling(sibling, new_node);
    }

    fn add_attrs_if_missing(&self, target: &NodeId, attrs: Vec<Attribute>) {
        self.step();
        self.inner.add_attrs_if_missing(target, attrs);
    }

    fn remove_from_parent(&self, target: &NodeId) {
        self.step();
        self.inner.remove_from_parent(target);
    }

    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        self.step();
        self.inner.reparent_children(node, new_parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(text: &str) -> u64 {
        let budget = WorkBudget::unlimited();
        parse_document(text, &budget).unwrap();
        budget.used()
    }

    #[test]
    fn builds_the_same_tree_as_scraper() {
        let text = "<!DOCTYPE html><title>t</title><p>a<b>b<p>c</b><table><td>x</table>é";
        let ours = parse_document(text, &WorkBudget::unlimited()).unwrap();
        assert_eq!(ours.html(), Html::parse_document(text).html());
    }

    #[test]
    fn deep_nesting_costs_the_tree_builder_quadratic_work_and_the_budget_stops_it() {
        let nested = |depth: usize| "<div>".repeat(depth);
        let (small, large) = (work(&nested(1_000)), work(&nested(2_000)));
        // The tree builder's own scope walks: counted, so the budget sees them.
        assert!(large > 3 * small, "{small} -> {large}");

        let budget = WorkBudget::new(1_000_000, tokio_util::sync::CancellationToken::new());
        let err = parse_document(&nested(1_000_000), &budget).unwrap_err();
        assert_eq!(err, WorkError::Exceeded { limit: 1_000_000 });
        // Stopped within a piece of text of the limit, not at the end of the document.
        assert!(budget.used() < 2_000_000, "{}", budget.used());
    }
}
