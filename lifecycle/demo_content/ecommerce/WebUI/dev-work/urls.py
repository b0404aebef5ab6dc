from django.urls import path

from . import views

app_name = "shop"
urlpatterns = [
    path("", views.product_list, name="products"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("cart/update/", views.cart_update, name="cart-update"),
    path("cart/remove/", views.cart_remove, name="cart-remove"),
]
