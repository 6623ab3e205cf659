def test_rep_sees_customer_list(client, auth, make_customer):
    make_customer("rep_a", name="Acme Trading")
    auth.login("rep_a")
    response = client.get("/customerview/list/")
    assert response.status_code == 200
    assert "Acme Trading" in response.get_data(as_text=True)
