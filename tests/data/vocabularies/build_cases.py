#!/usr/bin/env python3
"""Input events in the shapes real sites send, for tests/integration/test_vocabularies.py.

Each case is what a site's adapter posts to /v1/events after one call of its analytics code:
Segment's analytics.track(name, properties) (the e-commerce spec v2 events and their property
names), GA4's gtag('event', name, params) / dataLayer objects (recommended events, `items`),
the TikTok pixel's ttq.track(name, properties, {event_id}) arguments, and a CRM's lead statuses
sent by the site's server. Writes cases.json; the expected outbound events live beside each
case (filled by the test's --regenerate mode, then reviewed by hand).
"""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))
SEG_PRODUCTS = [
    {"product_id": "507f1f77bcf86cd799439011", "sku": "45790-32", "name": "Monopoly: 3rd Edition",
     "price": 19, "quantity": 1, "category": "Games", "brand": "Hasbro"},
    {"product_id": "505bd76785ebb509fc183733", "sku": "46493-32", "name": "Uno Card Game",
     "price": 3, "quantity": 2, "category": "Games"},
]
GA4_ITEMS = [
    {"item_id": "SKU_12345", "item_name": "Stan and Friends Tee", "item_brand": "Google",
     "item_category": "Apparel", "price": 10.01, "quantity": 3},
    {"item_id": "SKU_12346", "item_name": "Google Grey Women's Tee", "item_category": "Apparel",
     "price": 21.01, "quantity": 2},
]
ONE_ITEM = [{"item_id": "SKU_12345", "item_name": "Stan and Friends Tee", "price": 10.01, "quantity": 1}]
TTQ_CONTENTS = [{"content_id": "301", "content_type": "product", "content_name": "dress",
                 "quantity": 1, "price": 8}]

cases = []
def case(name, source, event, properties=None, **extra):
    ev = {"event": event, "event_id": "ev-%02d" % (len(cases) + 1), "timestamp": 1763700000,
          "consent": "granted"}
    if properties is not None:
        ev["properties"] = properties
    ev.update(extra)
    cases.append({"name": name, "source": source, "input": ev})

# Segment / RudderStack e-commerce spec v2
case("Segment Products Searched", "segment", "Products Searched", {"query": "blue hotpants"})
case("Segment Product List Viewed", "segment", "Product List Viewed",
     {"list_id": "hot_deals_1", "category": "Deals", "products": SEG_PRODUCTS})
case("Segment Product Viewed", "segment", "Product Viewed", dict(SEG_PRODUCTS[0], currency="USD", value=19))
case("Segment Product Added", "segment", "Product Added", dict(SEG_PRODUCTS[0], cart_id="skdjsidjsdkdj29j", currency="USD", value=19))
case("Segment Product Added to Wishlist", "segment", "Product Added to Wishlist", dict(SEG_PRODUCTS[1], wishlist_id="w1"))
case("Segment Cart Viewed", "segment", "Cart Viewed", {"cart_id": "c1", "products": SEG_PRODUCTS})
case("Segment Checkout Started", "segment", "Checkout Started",
     {"order_id": "50314b8e9bcf000000000000", "value": 25, "revenue": 25, "currency": "USD", "products": SEG_PRODUCTS})
case("Segment Payment Info Entered", "segment", "Payment Info Entered", {"checkout_id": "39f39fj39f3f", "order_id": "dkfsjidfjsdifsdfksdjfkdsfjsdfkdsf"})
case("Segment Order Completed", "segment", "Order Completed",
     {"checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "order_id": "50314b8e9bcf000000000000", "total": 27.5,
      "revenue": 25, "value": 25, "shipping": 3, "tax": 2, "discount": 2.5, "coupon": "hasbros",
      "currency": "USD", "products": SEG_PRODUCTS})
case("Segment Order Completed, lower case", "segment", "order completed", {"value": 25, "currency": "USD", "products": SEG_PRODUCTS[:1]})
case("Segment Signed Up", "segment", "Signed Up", {"type": "organic"})
case("Segment Order Refunded (no TikTok equivalent)", "segment", "Order Refunded", {"order_id": "50314b8e9bcf000000000000"})
case("Segment Coupon Applied (custom)", "segment", "Coupon Applied", {"coupon_id": "may_deals_2016"})
case("Segment identify-style user arrays", "segment", "Order Completed",
     {"value": 25, "currency": "EUR", "products": SEG_PRODUCTS[:1]},
     user={"email": ["jane@example.com", "JANE.DOE@example.com"], "external_id": ["u-1", "u-2"]})
# GA4 recommended events (gtag / dataLayer)
case("GA4 view_item", "ga4", "view_item", {"currency": "USD", "value": 30.03, "items": ONE_ITEM})
case("GA4 view_item_list", "ga4", "view_item_list", {"item_list_id": "related_products", "items": GA4_ITEMS})
case("GA4 add_to_cart", "ga4", "add_to_cart", {"currency": "USD", "value": 30.03, "items": GA4_ITEMS[:1]})
case("GA4 add_to_wishlist", "ga4", "add_to_wishlist", {"currency": "USD", "value": 21.01, "items": GA4_ITEMS[1:]})
case("GA4 begin_checkout", "ga4", "begin_checkout", {"currency": "USD", "value": 72.05, "coupon": "SUMMER_FUN", "items": GA4_ITEMS})
case("GA4 add_payment_info", "ga4", "add_payment_info", {"currency": "USD", "value": 72.05, "payment_type": "Credit Card", "items": GA4_ITEMS})
case("GA4 add_shipping_info (custom)", "ga4", "add_shipping_info", {"currency": "USD", "value": 72.05, "shipping_tier": "Ground", "items": GA4_ITEMS})
case("GA4 purchase", "ga4", "purchase",
     {"transaction_id": "T_12345", "value": 72.05, "tax": 3.6, "shipping": 5.99, "currency": "USD",
      "coupon": "SUMMER_SALE", "items": GA4_ITEMS})
case("GA4 purchase, upper case", "ga4", "PURCHASE", {"transaction_id": "T_12346", "value": 10.01, "currency": "EUR", "items": ONE_ITEM})
case("GA4 search", "ga4", "search", {"search_term": "t-shirts"})
case("GA4 sign_up", "ga4", "sign_up", {"method": "Google"})
case("GA4 generate_lead", "ga4", "generate_lead", {"currency": "USD", "value": 99.99, "lead_source": "Trade show"})
case("GA4 login (custom)", "ga4", "login", {"method": "Google"})
case("GA4 page_view (custom)", "ga4", "page_view", {})
case("GA4 purchase, single item object", "ga4", "purchase", {"transaction_id": "T_1", "value": 10.01, "currency": "USD", "items": ONE_ITEM[0]})
# TikTok pixel ttq.track(name, properties, {event_id}) arguments
case("ttq ViewContent", "ttq", "ViewContent", {"contents": TTQ_CONTENTS, "value": 8, "currency": "USD"})
case("ttq AddToCart", "ttq", "AddToCart", {"contents": TTQ_CONTENTS, "value": 8, "currency": "USD"})
case("ttq InitiateCheckout", "ttq", "InitiateCheckout", {"contents": TTQ_CONTENTS, "value": 8, "currency": "USD"})
case("ttq CompletePayment (renamed Purchase)", "ttq", "CompletePayment", {"contents": TTQ_CONTENTS, "value": 8, "currency": "USD"})
case("ttq SubmitForm (renamed Lead)", "ttq", "SubmitForm", {})
case("ttq PlaceAnOrder (kept until 2027)", "ttq", "PlaceAnOrder", {"contents": TTQ_CONTENTS, "value": 8, "currency": "USD"})
case("ttq Search with query", "ttq", "Search", {"query": "red dress"})
case("ttq Search with search_string", "ttq", "Search", {"search_string": "red dress"})
case("ttq contents as one object", "ttq", "AddToCart", {"contents": TTQ_CONTENTS[0], "currency": "USD", "value": 8})
case("ttq content_ids given", "ttq", "ViewContent", {"content_ids": ["301", "302"], "content_type": "product_group"})
case("ttq identify with two phones", "ttq", "Purchase", {"value": 8, "currency": "USD"},
     user={"phone_number": ["(213) 373-4253", "+1 202 555 0100"]})
case("ttq upper-case email digest", "ttq", "Purchase", {"value": 8, "currency": "USD"},
     user={"email": "848A771458438FC2EC420560D769FB9B9B86851EE338EC56517BAABD79D3BB4F"})
case("ttq limited_data_use from the page", "ttq", "Purchase", {"value": 8, "currency": "USD"}, limited_data_use=True)
# CRM lead statuses sent by the site's server (site event_map)
case("CRM qualified", "crm", "qualified", {"value": 1000, "currency": "USD"})
case("CRM won (one to two events)", "crm", "won", {"value": 5000, "currency": "USD"})
case("CRM Closed Won (case-insensitive site map)", "crm", "closed won", {"value": 5000, "currency": "USD"})
case("CRM Sign Up / Register (site map)", "crm", "Sign Up / Register", {})
case("CRM Add to Cart (v2) unmapped, refused", "crm", "Add to Cart (v2)", {})

with open(os.path.join(HERE, "cases.json"), "w") as f:
    json.dump(cases, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(cases), "cases")
