from django import forms


class CommentField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), **kwargs)


class PublishForm(forms.Form):
    comment = CommentField()


class SaveFileForm(forms.Form):
    path = forms.CharField(max_length=1024)
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea)


class AddFileForm(forms.Form):
    path = forms.CharField(max_length=1024, label="New file path")
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 4}))
    upload = forms.FileField(required=False, label="or upload a file")


class RenameFileForm(forms.Form):
    path = forms.CharField(max_length=1024)
    new_path = forms.CharField(max_length=1024, label="New path")


class PathForm(forms.Form):
    path = forms.CharField(max_length=1024)


class UploadForm(forms.Form):
    archive = forms.FileField(label="Module zip")
    comment = CommentField()
