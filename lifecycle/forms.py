from django import forms


class CommentField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), **kwargs)


class DraftStateForm(forms.Form):
    """Which draft, and which change of it (its revision), the form's page showed.

    Every editor form sends them, so that a form from a page another tab made
    out of date is refused (409) instead of applied over that tab's work. Left
    optional here: a form without them is refused as stale, with the text kept.
    """

    draft = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    revision = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)


class PublishForm(DraftStateForm):
    comment = CommentField()


class DiscardForm(DraftStateForm):
    pass


class SaveFileForm(DraftStateForm):
    path = forms.CharField(max_length=1024)
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    # The content hash of the file as the page showed it.
    from_hash = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    # Empty files are files (an empty __init__.py), as in a zip.
    upload = forms.FileField(required=False, allow_empty_file=True, label="Replace it with a file")


class AddFileForm(DraftStateForm):
    path = forms.CharField(max_length=1024, label="New file path")
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 4}))
    upload = forms.FileField(required=False, allow_empty_file=True, label="or upload a file")


class RenameFileForm(DraftStateForm):
    path = forms.CharField(max_length=1024)
    new_path = forms.CharField(max_length=1024, label="New path")


class DeleteFileForm(DraftStateForm):
    path = forms.CharField(max_length=1024)
    from_hash = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)


class UploadForm(forms.Form):
    archive = forms.FileField(label="Module zip")
    comment = CommentField()
